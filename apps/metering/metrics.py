"""Metering's Prometheus metrics (ingestion outcomes, rollup lag), read from its own tables at
scrape time and registered into core's registry by ``MeteringConfig.ready()``."""

from collections.abc import Iterator
from datetime import timedelta

from django.core.cache import cache
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from apps.metering.models import IngestBatch
from apps.metering.selectors import rollup_lag

# Event outcome label -> IngestBatch column.
_OUTCOMES = {
    "accepted": "accepted",
    "duplicate": "duplicates",
    "conflict": "conflicts",
    "rejected": "rejected",
}
INGEST_CHECKPOINT_KEY = "percall:metrics:ingest-checkpoint"
# A batch received this long ago has committed (an ingestion transaction lasts seconds), so no
# batch with a lower id can still appear: the running totals can be folded up to it.
INGEST_SETTLE = timedelta(minutes=10)


def _ingest_totals() -> dict[str, int]:
    """Totals over every stored IngestBatch, read as a running checkpoint in the cache (the
    sums up to a settled batch id) plus the sums past it, so a scrape reads only the batches
    of the last few minutes by primary key instead of the whole table. Two queries."""
    batches = IngestBatch.objects
    empty = {"id": 0, "batches": 0, **dict.fromkeys(_OUTCOMES, 0)}
    checkpoint: dict[str, int] = cache.get(INGEST_CHECKPOINT_KEY) or empty
    newer = batches.filter(id__gt=checkpoint["id"])
    settled_id = newer.filter(received_at__lt=timezone.now() - INGEST_SETTLE).aggregate(
        last=Max("id")
    )["last"]
    settled = Q(id__lte=settled_id or 0)
    # Aliases must not be column names: Django would take a later Sum("accepted") for the alias.
    sums = newer.aggregate(
        all_batches=Count("id"),
        settled_batches=Count("id", filter=settled),
        **{f"all_{n}": Coalesce(Sum(c), 0) for n, c in _OUTCOMES.items()},
        **{f"settled_{n}": Coalesce(Sum(c, filter=settled), 0) for n, c in _OUTCOMES.items()},
    )
    names = ["batches", *_OUTCOMES]
    if settled_id:
        folded = {name: checkpoint[name] + sums[f"settled_{name}"] for name in names}
        # Concurrent scrapes may each write one: every checkpoint is a true total up to its id.
        cache.set(INGEST_CHECKPOINT_KEY, {"id": settled_id, **folded}, timeout=None)
    return {name: checkpoint[name] + sums[f"all_{name}"] for name in names}


def ingest_metrics() -> Iterator[Metric]:
    totals = _ingest_totals()
    events = CounterMetricFamily(
        "percall_ingest_events",
        "Events in stored ingestion requests, by outcome (per-event codes are not stored).",
        labels=["outcome"],
    )
    for outcome in _OUTCOMES:
        events.add_metric([outcome], totals[outcome])
    yield events
    yield CounterMetricFamily(
        "percall_ingest_batches", "Ingestion requests stored.", value=totals["batches"]
    )


def rollup_metrics() -> Iterator[Metric]:
    queue = rollup_lag()
    lag = queue.seconds(timezone.now())
    yield GaugeMetricFamily(
        "percall_rollup_lag_seconds",
        "Age of the oldest (tenant, hour) waiting for its rollup; 0 when none waits.",
        value=lag,
    )
    yield GaugeMetricFamily(
        "percall_rollup_pending", "Rows in the rollup queue.", value=queue.pending
    )
