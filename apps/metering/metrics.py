"""Metering's Prometheus metrics (ingestion outcomes, rollup lag), read from its own tables at
scrape time and registered into core's registry by ``MeteringConfig.ready()``."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.db import connection
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
# The per-event rejection codes ingestion gives (apps/metering/services/ingest.py); a code
# not listed here still appears once it happens.
REJECTION_CODES = (
    "invalid",
    "tenant_mismatch",
    "timestamp_in_future",
    "timestamp_too_old",
    "unknown_tenant",
)
INGEST_CHECKPOINT_KEY = "percall:metrics:ingest-checkpoint"
# A batch received this long ago has committed (an ingestion transaction lasts seconds), so no
# batch with a lower id can still appear: the running totals can be folded up to it.
INGEST_SETTLE = timedelta(minutes=10)


# Rejections by code over the batches past the checkpoint: all of them, and those up to the
# settled id. One row per code; the JSON objects are read in SQL (a few keys each).
_CODES_SQL = {
    "postgresql": (
        "SELECT c.key, SUM(c.value::bigint), "
        "COALESCE(SUM(c.value::bigint) FILTER (WHERE b.id <= %s), 0) "
        "FROM metering_ingest_batch b CROSS JOIN LATERAL jsonb_each_text(b.rejected_codes) c "
        "WHERE b.id > %s AND b.rejected > 0 GROUP BY c.key"
    ),
    "sqlite": (
        "SELECT c.key, SUM(c.value), SUM(CASE WHEN b.id <= %s THEN c.value ELSE 0 END) "
        "FROM metering_ingest_batch b, json_each(b.rejected_codes) c "
        "WHERE b.id > %s AND b.rejected > 0 GROUP BY c.key"
    ),
}


def _rejected_codes(after_id: int, settled_id: int) -> tuple[dict[str, int], dict[str, int]]:
    """Rejections by code in batches past ``after_id``: all, and those up to ``settled_id``."""
    with connection.cursor() as cursor:
        cursor.execute(_CODES_SQL[connection.vendor], [settled_id, after_id])
        rows = cursor.fetchall()
    return (
        {code: int(total) for code, total, _ in rows},
        {code: int(settled) for code, _, settled in rows if settled},
    )


def _added(base: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    return {code: base.get(code, 0) + more.get(code, 0) for code in sorted({*base, *more})}


def _ingest_totals() -> dict[str, Any]:
    """Totals over every stored IngestBatch, read as a running checkpoint in the cache (the
    sums up to a settled batch id) plus the sums past it, so a scrape reads only the batches
    of the last few minutes by primary key instead of the whole table. Three queries: the
    settled id, the outcome sums, the rejections by code."""
    batches = IngestBatch.objects
    empty = {"id": 0, "batches": 0, **dict.fromkeys(_OUTCOMES, 0), "codes": {}}
    checkpoint: dict[str, Any] = cache.get(INGEST_CHECKPOINT_KEY) or empty
    # A checkpoint written before codes were stored: the batches it folded had none.
    folded_codes: dict[str, int] = checkpoint.get("codes", {})
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
    codes, settled_codes = _rejected_codes(checkpoint["id"], settled_id or 0)
    names = ["batches", *_OUTCOMES]
    if settled_id:
        folded = {name: checkpoint[name] + sums[f"settled_{name}"] for name in names}
        folded["codes"] = _added(folded_codes, settled_codes)
        # Concurrent scrapes may each write one: every checkpoint is a true total up to its id.
        cache.set(INGEST_CHECKPOINT_KEY, {"id": settled_id, **folded}, timeout=None)
    totals: dict[str, Any] = {name: checkpoint[name] + sums[f"all_{name}"] for name in names}
    totals["codes"] = _added(folded_codes, codes)
    return totals


def ingest_metrics() -> Iterator[Metric]:
    totals = _ingest_totals()
    events = CounterMetricFamily(
        "percall_ingest_events",
        "Events in stored ingestion requests, by outcome.",
        labels=["outcome"],
    )
    for outcome in _OUTCOMES:
        events.add_metric([outcome], totals[outcome])
    yield events
    rejected = CounterMetricFamily(
        "percall_ingest_rejected",
        "Rejected events in stored ingestion requests, by rejection code.",
        labels=["code"],
    )
    # Every code is listed from the start (at 0 until it happens), so rate() has a series.
    for code in _added(dict.fromkeys(REJECTION_CODES, 0), totals["codes"]):
        rejected.add_metric([code], totals["codes"].get(code, 0))
    yield rejected
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
