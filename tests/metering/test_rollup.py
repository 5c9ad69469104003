"""Hourly rollups: exact sums per (tenant, hour, dimensions), idempotent, incremental, late
events caught, and safe under concurrent runs and concurrent ingestion (PostgreSQL)."""

import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest
import time_machine

from apps.metering.models import ROLLUP_DIMENSIONS, ROLLUP_FLAGS, RollupPending, UsageRollup
from apps.metering.selectors import usage_intake_check
from apps.metering.services.rollup import rollup_pending_run, rollup_rebuild
from tests.concurrency import run_together
from tests.metering.ingesting import ingest_events

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
H09 = datetime(2026, 11, 20, 9, tzinfo=UTC)
H10 = datetime(2026, 11, 20, 10, tzinfo=UTC)
H11 = datetime(2026, 11, 20, 11, tzinfo=UTC)
CHAT = {"endpoint": "/v1/chat", "feature": "chat", "provider": "openai", "model": "gpt-4o"}


def ingest(*events: dict) -> None:
    ingest_events(*events)


def event(event_id: str, at: str, tenant: str = "acme", **attributes) -> dict:
    return {"id": event_id, "tenant": tenant, "type": "llm.call", "timestamp": at, **attributes}


def snapshot() -> list[tuple]:
    """Every rollup row without its surrogate id, in a stable order."""
    fields = [f.name for f in UsageRollup._meta.concrete_fields if f.name != "id"]
    return sorted(tuple(row) for row in UsageRollup.objects.values_list(*fields).order_by(*fields))


def rollup_of(tenant, hour: datetime, **dimensions) -> UsageRollup:
    return UsageRollup.objects.get(tenant=tenant, hour=hour, **dimensions)


def rollups_summed(tenant, hour: datetime, **dimensions) -> SimpleNamespace:
    """The rows of one (tenant, hour, dimensions) over every call class, summed (max for
    latency_ms_max); dimensions must agree across them."""
    rows = list(UsageRollup.objects.filter(tenant=tenant, hour=hour, **dimensions))
    assert rows
    summed = SimpleNamespace(**{f: getattr(rows[0], f) for f in ROLLUP_DIMENSIONS})
    for row in rows:
        assert all(getattr(row, f) == getattr(summed, f) for f in ROLLUP_DIMENSIONS)
    for name in (f.name for f in UsageRollup._meta.concrete_fields):
        if name in ("id", "tenant", "hour", *ROLLUP_DIMENSIONS, *ROLLUP_FLAGS, "latency_ms_max"):
            continue
        setattr(summed, name, sum(getattr(row, name) for row in rows))
    maxima = [row.latency_ms_max for row in rows if row.latency_ms_max is not None]
    summed.latency_ms_max = max(maxima) if maxima else None
    return summed


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_rollup_sums_every_measure_per_tenant_hour_and_dimensions(make_tenant):
    # given three chat calls in hour 10, a call of another model, one in hour 11, one elsewhere
    acme, globex = make_tenant("acme"), make_tenant("globex")
    first = {
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_read_tokens": 5,
        "cache_write_tokens": 1,
        "credits": "1.5",
        "quantity": "2",
        "cost": "0.000002",
        "latency_ms": "120.5",
        "status_code": 200,
        "attempt": 1,
        "cache_hit": False,
        "external": True,
        "bytes_in": 1000,
        "bytes_out": 2000,
    }
    ingest(
        event("c1", "2026-11-20T10:05:00Z", **CHAT, **first),
        event(
            "c2",
            "2026-11-20T10:20:00Z",
            **CHAT,
            input_tokens=200,
            output_tokens=40,
            credits="0.25",
            quantity="1",
            cost="0.000002",
            latency_ms="80.25",
            status_code=429,
            attempt=2,
            cache_hit=True,
            external=True,
            bytes_in=10,
        ),
        event(
            "c3",
            "2026-11-20T10:59:59.999Z",
            **CHAT,
            input_tokens=300,
            output_tokens=60,
            reasoning_tokens=7,
            cost="0.000002",
            latency_ms="300",
            status_code=500,
            attempt=3,
            cache_hit=True,
            external=False,
        ),
        event("c4", "2026-11-20T10:30:00Z", **(CHAT | {"model": "gpt-4o-mini"}), input_tokens=9),
        event("c5", "2026-11-20T11:00:00Z", **CHAT, **first),
        event("g1", "2026-11-20T10:10:00Z", tenant="globex", **CHAT, **first),
    )

    # when the queued hours are rolled up
    rebuilt = rollup_pending_run()

    # then each (tenant, hour, dimensions, call class) has one row, with the exact sums
    assert rebuilt == 3  # acme 10:00, acme 11:00, globex 10:00
    classes = sorted(
        UsageRollup.objects.filter(tenant=acme, hour=H10, model="gpt-4o").values_list(
            "cache_hit", "wasted", "external", "events"
        )
    )
    # c1 a plain external call; c2 a retried, failed external cache hit; c3 an internal one
    assert classes == [(False, False, True, 1), (True, True, False, 1), (True, True, True, 1)]
    chat = rollups_summed(acme, H10, model="gpt-4o")
    assert (chat.event_type, chat.endpoint, chat.feature, chat.provider, chat.cost_currency) == (
        "llm.call",
        "/v1/chat",
        "chat",
        "openai",
        "USD",  # the default cost currency, since the events did not say
    )
    assert chat.events == 3
    assert chat.input_tokens == 100 + 200 + 300
    assert chat.output_tokens == 20 + 40 + 60
    assert chat.cache_read_tokens == 5
    assert chat.cache_write_tokens == 1
    assert chat.reasoning_tokens == 7
    assert chat.credits == Decimal("1.75")  # 1.5 + 0.25
    assert chat.quantity == Decimal("3")  # 2 + 1
    assert chat.cost == Decimal("0.000006")  # 0.000002 x 3, exact
    assert chat.latency_ms_sum == Decimal("500.750")  # 120.5 + 80.25 + 300
    assert chat.latency_ms_max == Decimal("300.000")
    assert chat.errors == 2  # 429 and 500
    assert chat.retries == 2  # attempts 2 and 3
    assert chat.cache_hits == 2
    assert chat.external_calls == 2
    assert (chat.bytes_in, chat.bytes_out) == (1010, 2000)

    mini = rollup_of(acme, H10, model="gpt-4o-mini")
    assert (mini.events, mini.input_tokens, mini.cost_currency) == (1, 9, "")
    assert mini.latency_ms_max is None
    assert (mini.errors, mini.retries, mini.cache_hits, mini.external_calls) == (0, 0, 0, 0)

    # an event exactly on the hour belongs to that hour, not the one before
    hour_11 = rollup_of(acme, H11)
    assert (hour_11.events, hour_11.input_tokens, hour_11.cost) == (1, 100, Decimal("0.000002"))
    other = rollup_of(globex, H10)
    assert (other.events, other.input_tokens, other.retries) == (1, 100, 0)
    assert UsageRollup.objects.count() == 6  # gpt-4o at 10:00 in three call classes
    assert not RollupPending.objects.exists()


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_events_without_dimensions_roll_into_empty_string_rows(make_tenant):
    # given bare events, one with an endpoint, and one bare event with a cost
    acme = make_tenant("acme")
    bare = {"type": "api.call", "tenant": "acme", "timestamp": "2026-11-20T10:01:00Z"}
    ingest(
        bare | {"id": "b1"},
        bare | {"id": "b2"},
        bare | {"id": "b3", "endpoint": "/v1/search"},
        bare | {"id": "b4", "cost": "0.5", "cost_currency": "EUR"},
    )

    # when rolled up
    rollup_pending_run()

    # then missing dimensions are '' (not NULL), so the unique grain holds
    dimensions = ("endpoint", "feature", "workflow", "team", "service", "environment")
    empty = dict.fromkeys((*dimensions, "provider", "model", "cost_currency"), "")
    plain = rollup_of(acme, H10, **empty)
    assert plain.event_type == "api.call"
    assert (plain.events, plain.input_tokens, plain.cost) == (2, 0, Decimal("0"))
    assert rollup_of(acme, H10, **(empty | {"endpoint": "/v1/search"})).events == 1
    costed = rollup_of(acme, H10, **(empty | {"cost_currency": "EUR"}))
    assert (costed.events, costed.cost) == (1, Decimal("0.5"))
    assert UsageRollup.objects.count() == 3


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_running_twice_and_rebuilding_a_range_leave_identical_rows(make_tenant):
    # given events over three hours, rolled up once
    acme = make_tenant("acme")
    ingest(
        event("a", "2026-11-20T09:15:00Z", **CHAT, input_tokens=10, cost="0.1"),
        event("b", "2026-11-20T10:15:00Z", **CHAT, input_tokens=20, status_code=503),
        event("c", "2026-11-20T10:45:00Z", model="o3", input_tokens=30, attempt=2),
        event("d", "2026-11-20T11:15:00Z", **CHAT, input_tokens=40, latency_ms=7),
    )
    assert rollup_pending_run() == 3
    first = snapshot()

    # when the run is repeated, and every hour of the range is rebuilt from raw events
    assert rollup_pending_run() == 0
    second = snapshot()
    assert rollup_rebuild(tenant_id=acme.id, start=H09, end=H11 + timedelta(hours=1)) == 3
    assert rollup_pending_run() == 3
    rebuilt = snapshot()
    assert rollup_pending_run() == 0

    # then the rows are the same each time
    assert first == second == rebuilt
    assert len(first) == 4
    assert rollup_of(acme, H10, model="gpt-4o").errors == 1
    assert rollup_of(acme, H10, model="o3").retries == 1


@pytest.mark.django_db
def test_a_late_event_for_an_already_rolled_hour_updates_it(make_tenant):
    acme = make_tenant("acme")
    with time_machine.travel(NOW, tick=False) as clock:
        # given hour 10 rolled up with one event
        ingest(event("early", "2026-11-20T10:05:00Z", **CHAT, input_tokens=100, cost="0.25"))
        rollup_pending_run()
        assert rollup_of(acme, H10).events == 1

        # when, two days later, an event for that hour arrives and the rollup runs again
        clock.move_to(NOW + timedelta(days=2))
        ingest(event("late", "2026-11-20T10:55:00Z", **CHAT, input_tokens=50, cost="0.5"))
        assert rollup_pending_run() == 1

    # then the hour is recomputed with both events
    row = rollup_of(acme, H10)
    assert (row.events, row.input_tokens, row.cost) == (2, 150, Decimal("0.75"))
    assert UsageRollup.objects.count() == 1


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_only_queued_hours_are_recomputed_and_rebuild_repairs_the_rest(make_tenant):
    # given hours 9 and 10 rolled up
    acme = make_tenant("acme")
    ingest(
        event("a", "2026-11-20T09:30:00Z", **CHAT, input_tokens=10),
        event("b", "2026-11-20T10:30:00Z", **CHAT, input_tokens=20),
    )
    rollup_pending_run()
    # and hour 9's row corrupted behind the rollup's back
    UsageRollup.objects.filter(tenant=acme, hour=H09).update(events=999, input_tokens=0)

    # when a new event touches only hour 10
    ingest(event("c", "2026-11-20T10:40:00Z", **CHAT, input_tokens=5))
    assert rollup_pending_run() == 1

    # then hour 10 is recomputed and hour 9 is left alone
    assert (rollup_of(acme, H10).events, rollup_of(acme, H10).input_tokens) == (2, 25)
    assert (rollup_of(acme, H09).events, rollup_of(acme, H09).input_tokens) == (999, 0)

    # when hour 9 is rebuilt explicitly
    rollup_rebuild(tenant_id=acme.id, start=H09, end=H10)
    assert rollup_pending_run() == 1

    # then it matches its raw events again
    assert (rollup_of(acme, H09).events, rollup_of(acme, H09).input_tokens) == (1, 10)
    assert usage_intake_check(tenant_id=acme.id, hour=H09).balanced


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_rebuild_takes_utc_hours_whatever_the_offset_of_its_bounds(make_tenant):
    # given hour 10:00Z rolled up
    acme = make_tenant("acme")
    ingest(event("a", "2026-11-20T10:30:00Z", **CHAT, input_tokens=10))
    rollup_pending_run()
    before = snapshot()

    # when it is rebuilt with bounds in India time (+05:30): 15:45+05:30 is 10:15Z
    india = timezone(timedelta(hours=5, minutes=30))
    start, end = (
        datetime(2026, 11, 20, 15, 45, tzinfo=india),
        datetime(2026, 11, 20, 16, 30, tzinfo=india),
    )
    assert rollup_rebuild(tenant_id=acme.id, start=start, end=end) == 1
    assert rollup_pending_run() == 1

    # then the UTC hour 10:00Z is rebuilt, and no half-hour row appears
    assert snapshot() == before
    assert list(UsageRollup.objects.values_list("hour", flat=True)) == [H10]


# --- PostgreSQL: concurrency ------------------------------------------------------------------

HOURS = 96  # four days of hours, well inside the 35-day late window
BASE = datetime(2026, 11, 15, tzinfo=UTC)  # on the hour, so a range of HOURS is exact


def _in_threads(*targets) -> None:
    run_together(*targets)


def _hour_events(prefix: str, tenant: str, hour_index: int) -> list[dict]:
    at = BASE + timedelta(hours=hour_index, minutes=7)
    return [
        event(f"{prefix}-{tenant}-{hour_index}-{n}", at.isoformat(), tenant, **CHAT, input_tokens=3)
        for n in range(2)
    ]


@pytest.fixture
def rollup_deferred(monkeypatch):
    """Ingestion and rebuilds queue hours but do not kick the rollup job: the test runs it."""
    monkeypatch.setattr("apps.metering.services.ingest.job_enqueue_on_commit", lambda **kw: None)
    monkeypatch.setattr("apps.metering.services.rollup.job_enqueue_on_commit", lambda **kw: None)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@time_machine.travel(NOW, tick=False)
def test_two_concurrent_runs_give_the_same_rows_as_one_run(make_tenant, rollup_deferred):
    # given 2 tenants x 96 hours queued twice each (two ingest rounds)
    tenants = [make_tenant("acme"), make_tenant("globex")]
    for round_ in ("r1", "r2"):
        for t in tenants:
            batch = [e for h in range(HOURS) for e in _hour_events(round_, t.external_id, h)]
            ingest(*batch)
    assert RollupPending.objects.count() == 2 * 2 * HOURS

    # when two workers drain the queue at once, in small batches so they interleave
    counts: list[int] = []
    _in_threads(*[lambda: counts.append(rollup_pending_run(batch_size=7))] * 2)

    # then the queue is empty and each tenant-hour has 4 events x 3 tokens
    assert not RollupPending.objects.exists()
    assert sum(counts) >= 2 * HOURS
    concurrent = snapshot()
    assert len(concurrent) == 2 * HOURS
    assert {(row.events, row.input_tokens) for row in UsageRollup.objects.all()} == {(4, 12)}

    # and one single run over the same hours gives exactly the same rows
    for t in tenants:
        rollup_rebuild(tenant_id=t.id, start=BASE, end=BASE + timedelta(hours=HOURS))
    assert rollup_pending_run() == 2 * HOURS
    assert snapshot() == concurrent


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@time_machine.travel(NOW, tick=False)
def test_a_run_concurrent_with_ingestion_ends_with_rollups_equal_to_raw_events(
    make_tenant, rollup_deferred
):
    # given two tenants and three senders, each sending 12 batches over the same 24 hours
    tenants = [make_tenant("acme"), make_tenant("globex")]
    hours = 24
    done = threading.Event()

    def sender(name: str):
        def send() -> None:
            for batch in range(12):
                ingest(
                    *[
                        e
                        for t in tenants
                        for h in range(hours)
                        for e in _hour_events(f"{name}{batch}", t.external_id, h)
                    ]
                )

        return send

    def roller() -> None:
        while not done.is_set():
            rollup_pending_run(batch_size=5)

    def senders() -> None:
        try:
            _in_threads(sender("x"), sender("y"), sender("z"))
        finally:
            done.set()

    # when a rollup worker loops while they send, then runs once more at the end
    _in_threads(roller, senders)
    rollup_pending_run()

    # then, for every tenant-hour, intake = raw events = rollups: 3 senders x 12 x 2 events
    for t in tenants:
        for h in range(hours):
            check = usage_intake_check(tenant_id=t.id, hour=BASE + timedelta(hours=h))
            assert (check.ingested, check.stored, check.rolled_up) == (72, 72, 72), check
            assert check.balanced and not check.pending
            assert check.rolled_up_tokens == 72 * 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@time_machine.travel(NOW, tick=False)
def test_two_claims_of_one_hour_rebuild_it_one_after_the_other(
    make_tenant, rollup_deferred, monkeypatch
):
    """A busy hour can sit in two workers' claims at once. The second must wait for the first
    to commit (the hour's row lock): were both inside their rebuild together, each would delete
    the rows it sees and insert its own, and the hour would be counted twice."""
    # given one hour queued twice (two batches), and a rebuild that lingers until another
    # worker joins it inside a rebuild, or for a second if none can
    make_tenant("acme")
    ingest(event("a1", "2026-11-20T10:05:00Z", input_tokens=3))
    ingest(event("a2", "2026-11-20T10:06:00Z", input_tokens=4))
    assert RollupPending.objects.count() == 2
    from apps.metering.services import rollup

    inside = threading.Barrier(2, timeout=1.0)
    met: list[bool] = []
    rebuild = rollup._recompute_window

    def lingering(cursor, pairs):
        rebuild(cursor, pairs)
        try:
            inside.wait()
            met.append(True)
        except threading.BrokenBarrierError:
            met.append(False)

    monkeypatch.setattr(rollup, "_recompute_window", lingering)

    # when two workers each claim one of the two marks at once
    run_together(*[lambda: rollup_pending_run(batch_size=1, max_batches=1)] * 2)

    # then they never were inside a rebuild of the hour together, and it is counted once
    assert met == [False, False]
    assert not RollupPending.objects.exists()
    row = rollup_of(UsageRollup.objects.get().tenant, H10)
    assert (row.events, row.input_tokens) == (2, 7)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_rollup_after_a_bulk_load_analyzes_the_partition_first(make_tenant):
    """Statistics from before a bulk load make the planner hash the events and a rollup of a
    million rows of one tenant take minutes; the rollup analyzes a partition that changed a
    lot since its last analysis, once."""
    from django.db import connection

    from apps.metering.services.partitions import event_partitions_ensure
    from apps.metering.services.statistics import event_statistics_refresh

    acme = make_tenant("acme")
    event_partitions_ensure(months={(2026, 3)})
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE metering_event_p2026_03")
        cursor.execute(
            'INSERT INTO metering_event (tenant_id, "timestamp", event_id, type, received_at, '
            "properties, backfill) SELECT %s, TIMESTAMPTZ '2026-03-01 00:00:00+00' "
            "+ g * interval '1 second', 'b' || g, 'api.call', now(), '{}', true "
            "FROM generate_series(1, 30000) AS g",
            [acme.id],
        )
        cursor.execute("SELECT pg_stat_force_next_flush()")
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)

    assert event_statistics_refresh(start=start, end=end) == ["metering_event_p2026_03"]
    assert event_statistics_refresh(start=start, end=end) == []


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("queued", "workers", "claimed"),
    [
        (3000, 2, 1500),  # shorter than two full claims: half each
        (3001, 2, 1501),  # rounded up, so no third claim for one row
        (6000, 2, 2500),  # two full claims' worth or more: a full claim
        (3000, 1, 2500),  # one worker: a full claim whatever the queue
        (1200, 2, 1000),  # a share is never below MIN_SHARED_CLAIM
        (700, 2, 700),  # and never more than is queued
    ],
)
def test_a_short_queue_is_shared_between_the_rollup_workers(make_tenant, queued, workers, claimed):
    """A backfill shorter than one claim per worker is split, so every worker has a share of
    the scan instead of one taking it all and the others idling."""
    from apps.metering.services.rollup import MIN_SHARED_CLAIM, rollup_pending_mark

    assert MIN_SHARED_CLAIM == 1000
    acme = make_tenant("acme")
    rollup_pending_mark(
        tenant_hours=[(acme.id, BASE + timedelta(hours=h)) for h in range(queued)],
        marked_at=NOW,
    )

    rebuilt = rollup_pending_run(batch_size=2500, max_batches=1, workers=workers)

    assert rebuilt == claimed
    assert RollupPending.objects.count() == queued - claimed
