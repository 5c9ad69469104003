"""A statements run killed with SIGKILL while it writes a month's drafts: the run is one
transaction (one snapshot of the month for every cost center and pool), so the kill leaves the
drafts as they were; the broker gives the message back and a restarted worker writes one
statement per cost center with the amounts worked out by hand (PostgreSQL and Redis; a real
Celery worker)."""

from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db import connection

from apps.chargeback.models import Statement, StatementLine
from apps.chargeback.services.statements import statements_run
from apps.costs.selectors import cost_period_parse
from apps.costs.services.rollup import cost_rollup_pending_run
from apps.metering.services.rollup import rollup_pending_run
from tests.chargeback.chargeback_setup import center, pool
from tests.metering.ingesting import ingest_events
from tests.workers import Worker, broker_clean, broker_unacked, task_send, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CENTERS = 100
DAYS = 30
MODELS = {"model-a": Decimal("0.0125"), "model-b": Decimal("0.0075")}
APP = "percall-statements-crash"  # the worker's connections, as pg_stat_activity names them


def _cost(i: int, day: int, model: str) -> Decimal:
    return MODELS[model] * (1 + (i + day) % 4)


def _events(late: bool) -> list[dict]:
    """One call a day and model for every cost center in November; ``late``: a second,
    later-arriving call on the 30th for each."""
    days = [30] if late else range(1, DAYS + 1)
    return [
        {
            "id": f"{'late' if late else 'on-time'}-{i}-{day}-{model}",
            "tenant": "acme",
            "type": "llm.call",
            "timestamp": f"2026-11-{day:02d}T12:00:00Z",
            "team": f"cc-{i:03d}",
            "service": "assistant",
            "provider": "openai",
            "model": model,
            "cost": str(_cost(i, day, model)),
            "cost_currency": "USD",
        }
        for i in range(CENTERS)
        for day in days
        for model in MODELS
    ]


def _record(events: list[dict]) -> None:
    for offset in range(0, len(events), 2000):
        ingest_events(*events[offset : offset + 2000], backfill=True)
    rollup_pending_run()
    cost_rollup_pending_run()


def _expected_direct(i: int) -> Decimal:
    """By hand: the month's exact cost of center ``i`` (every day and model, and the late
    calls), rounded once to cents, half up."""
    exact = sum(_cost(i, d, m) for d in range(1, DAYS + 1) for m in MODELS)
    exact += sum(_cost(i, 30, m) for m in MODELS)
    return exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _writing() -> bool:
    """The worker's transaction is writing statement lines (its row-exclusive lock on the
    table is taken by the first delete or insert), uncommitted and invisible to us."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE a.application_name = %s AND l.relation = 'chargeback_statementline'::regclass "
            "AND l.mode = 'RowExclusiveLock'",
            [APP],
        )
        return cursor.fetchone()[0] > 0


@pytest.fixture
def worker():
    broker_clean()
    started: list[Worker] = []

    def start() -> Worker:
        started.append(Worker(queues="billing", PGAPPNAME=APP).start())
        return started[-1]

    yield start
    for w in started:
        w.close()
    broker_clean()


def _amounts() -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    return {
        s.cost_center.code if s.cost_center else "": (
            s.direct_amount,
            s.allocated_amount,
            s.total_amount,
        )
        for s in Statement.objects.select_related("cost_center")
    }


def test_a_statements_run_killed_while_writing_leaves_the_drafts_whole_and_reruns_once(
    make_tenant, worker
):
    # given 100 cost centers with two calls a day in November and a 250.00 pool shared evenly,
    # whose drafts were made before the last calls of the 30th arrived
    make_tenant("acme")
    for i in range(CENTERS):
        center(f"cc-{i:03d}")
    pool("platform", "250.00", "even")
    _record(_events(late=False))
    statements_run(period=cost_period_parse("2026-11"))
    before = _amounts()
    lines_before = StatementLine.objects.count()
    assert len(before) == CENTERS
    _record(_events(late=True))

    # when the daily run is sent as beat sends it and its worker is killed while it writes
    task_send("chargeback.statements_run", period="2026-11")
    first = worker()
    wait_for(_writing, timeout=60, what=f"the run to write\n{first.tail()}", every=0.005)
    first.kill()

    # then nothing of the killed run is left: the drafts are the earlier ones, whole
    assert _amounts() == before
    assert StatementLine.objects.count() == lines_before
    assert broker_unacked("chargeback.statements_run") == 1

    # when a worker starts again and the broker gives the message back (no re-send here)
    second = worker()
    wait_for(
        lambda: broker_unacked("chargeback.statements_run") == 0 and _amounts() != before,
        timeout=60,
        what=f"the redelivered run to finish\n{second.tail()}",
    )

    # then one draft per cost center for the month, each with its late calls, worked by hand:
    # direct cost rounded once, the pool's 250.00 split into 2.50 each
    statements = Statement.objects.all()
    assert statements.count() == CENTERS
    assert {(s.period_start.isoformat(), s.status) for s in statements} == {("2026-11-01", "draft")}
    assert _amounts() == {
        f"cc-{i:03d}": (
            _expected_direct(i),
            Decimal("2.50"),
            _expected_direct(i) + Decimal("2.50"),
        )
        for i in range(CENTERS)
    }
    assert sum(s.calls for s in statements) == CENTERS * (DAYS + 1) * len(MODELS)
    assert StatementLine.objects.filter(kind="direct").count() == CENTERS * DAYS * len(MODELS)
