"""A rollup worker killed with SIGKILL half-way through many (tenant, hour) pairs: its message
comes back from the broker, a restarted worker finishes the rollup, and every event is counted
exactly once (PostgreSQL and Redis; a real Celery worker)."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Sum

from apps.metering.models import RollupHour, RollupPending, UsageRollup
from tests.metering.ingesting import ingest_events
from tests.workers import Worker, broker_clean, broker_unacked, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TENANTS = 30
HOURS = 48
START = datetime(2026, 11, 20, tzinfo=UTC)
CLAIM = 8  # pairs per rollup transaction: 180 transactions for the 1,440 pairs


def _events() -> list[dict]:
    """1 to 3 events in every (tenant, hour), quantities 1 to 4: uneven on purpose."""
    events = []
    for t in range(TENANTS):
        for h in range(HOURS):
            for n in range(1 + (t + h) % 3):
                at = START + timedelta(hours=h, minutes=7 * n, milliseconds=t)
                events.append(
                    {
                        "id": f"t{t}-h{h}-{n}",
                        "tenant": f"tenant-{t:02d}",
                        "type": "api.call",
                        "timestamp": at.isoformat().replace("+00:00", "Z"),
                        "quantity": 1 + (t * h + n) % 4,
                    }
                )
    return events


def _rolled_up() -> dict[tuple[str, datetime], tuple[int, int]]:
    rows = UsageRollup.objects.values("tenant__external_id", "hour").annotate(
        events=Sum("events"), quantity=Sum("quantity")
    )
    return {(r["tenant__external_id"], r["hour"]): (r["events"], int(r["quantity"])) for r in rows}


@pytest.fixture
def worker():
    broker_clean()
    started: list[Worker] = []

    def start() -> Worker:
        started.append(Worker(queues="rollups", PERCALL_ROLLUP_CLAIM_PAIRS=str(CLAIM)).start())
        return started[-1]

    yield start
    for w in started:
        w.close()
    broker_clean()


@pytest.mark.parametrize("death", ["machine", "pool_child"])
def test_a_rollup_killed_mid_way_is_redelivered_and_counts_every_event_once(
    make_tenant, settings, worker, death
):
    """``machine``: the whole worker dies, and the message comes back after the visibility
    timeout to a new worker. ``pool_child``: only the process running the task dies, and the
    surviving main process requeues it at once (reject on worker lost)."""
    # given 30 tenants with 1 to 3 events in each of 48 hours, and what the rollup must say,
    # worked out from the events sent (not from the code under test)
    for t in range(TENANTS):
        make_tenant(f"tenant-{t:02d}")
    events = _events()
    expected_counts = Counter()
    expected_quantity = Counter()
    for e in events:
        hour = datetime.fromisoformat(e["timestamp"]).replace(minute=0, second=0, microsecond=0)
        expected_counts[(e["tenant"], hour)] += 1
        expected_quantity[(e["tenant"], hour)] += e["quantity"]
    pairs = len(expected_counts)
    assert pairs == TENANTS * HOURS

    # when they are ingested as production does (the commit sends the debounced rollup kick
    # to the broker's rollups queue) and the worker is killed once some hours are rolled up
    settings.CELERY_TASK_ALWAYS_EAGER = False
    for offset in range(0, len(events), 1000):
        ingest_events(*events[offset : offset + 1000], backfill=True)
    first = worker()
    wait_for(
        lambda: RollupHour.objects.count() >= 3 * CLAIM,
        timeout=60,
        what=f"three claims rolled up\n{first.tail()}",
        every=0.01,
    )
    if death == "machine":
        first.kill()
    else:
        first.kill_pool_child()

    # then the kill left part of the work committed and the rest queued
    done = RollupHour.objects.count()
    assert 0 < done < pairs
    assert RollupPending.objects.exists()
    if death == "machine":
        # and the message unacked, waiting to come back
        assert broker_unacked("metering.rollup_pending") >= 1
        # when a worker starts again: the broker hands it the message back after its
        # visibility timeout (3 s here, 2 h in production), with no sweep or re-send
        second = worker()
    else:
        # when the main process, still up, starts a new pool process and is handed the
        # message it requeued (no sweep or re-send either)
        second = first
    wait_for(
        lambda: (
            not RollupPending.objects.exists() and broker_unacked("metering.rollup_pending") == 0
        ),
        timeout=60,
        what=f"the redelivered rollup to finish\n{second.tail()}",
    )

    # then every (tenant, hour) holds exactly its events and quantities: none lost, none
    # counted twice, the hours done before the kill included
    rolled = _rolled_up()
    assert {k: v[0] for k, v in rolled.items()} == dict(expected_counts)
    assert {k: v[1] for k, v in rolled.items()} == dict(expected_quantity)
    assert sum(v[0] for v in rolled.values()) == len(events)
    assert RollupHour.objects.count() == pairs
