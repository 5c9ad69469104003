"""Hourly usage rollups: recompute each touched (tenant, hour) from raw events as a whole.

Idempotent by construction: a run deletes a pair's rollup rows and rebuilds them from the events,
so running twice gives the same rows and a late event is caught by the mark its batch left.

Concurrent runs claim disjoint queue rows, oldest hours first (SKIP LOCKED), so each claim is a
short stretch of time and two workers take different stretches. Two claims can still share an
hour (a busy hour keeps collecting marks while it is rebuilt), so a rebuild first takes the row
lock of each of its hours in ``metering_rollup_hour``, in one order: the second worker waits for
the first to commit, then rebuilds the hour again from what is committed by then.

Throughput comes from scanning, not probing: the claimed pairs are cut into windows of nearby
hours, and each window is one range scan of the event table, kept to the claimed (tenant, hour)
pairs by a hashed semi-join and grouped by hashing in one pass.
"""

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.core.bulk import rows_insert
from apps.core.jobs import job_enqueue_on_commit
from apps.metering.models import (
    ROLLUP_DIMENSIONS,
    ROLLUP_FLAGS,
    Meter,
    RollupChanged,
    RollupHour,
    RollupPending,
)
from apps.metering.services.meters import meter_rollups_recompute
from apps.metering.services.statistics import event_statistics_refresh

logger = logging.getLogger(__name__)

TenantHour = tuple[UUID, datetime]
# What ``rollup_pending_mark`` takes: a tenant id and an hour, each a value or its text (a UUID's
# canonical text, a time with an offset), as ingestion holds them.
TenantHourMark = tuple[UUID | str, datetime | str]
_HOUR = timedelta(hours=1)

_DIMENSION_SOURCES = (
    {"event_type": "e.type"}
    | {d: f"COALESCE(e.{d}, '')" for d in ROLLUP_DIMENSIONS if d != "event_type"}
    # '' exactly where the event carried no cost: a currency alone prices nothing.
    | {"cost_currency": "CASE WHEN e.cost IS NULL THEN '' ELSE e.cost_currency END"}
    | {
        "cache_hit": "COALESCE(e.cache_hit, FALSE)",
        "wasted": "COALESCE(e.attempt > 1 OR e.status_code >= 400, FALSE)",
        "external": "COALESCE(e.external, FALSE)",
    }
)
assert tuple(_DIMENSION_SOURCES) == (*ROLLUP_DIMENSIONS, *ROLLUP_FLAGS)
_SUMMED_BIGINT = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "bytes_in",
    "bytes_out",
)
_SUMMED_NUMERIC = ("credits", "quantity", "cost")


def _measures(bigint_sum: str, numeric_sum: str) -> dict[str, str]:
    """The rollup's measures, each an aggregate over the hour's events ``e``."""
    return {
        "events": "COUNT(*)",
        **{name: f"COALESCE({bigint_sum}(e.{name}), 0)" for name in _SUMMED_BIGINT},
        **{name: f"COALESCE({numeric_sum}(e.{name}), 0)" for name in _SUMMED_NUMERIC},
        "latency_ms_sum": f"COALESCE({numeric_sum}(e.latency_ms), 0)",
        "latency_ms_max": "MAX(e.latency_ms)",
        # FILTER counts: a plain count transition per row, where SUM(CASE ...) evaluated an
        # expression and added a numeric for every event.
        "errors": "COUNT(*) FILTER (WHERE e.status_code >= 400)",
        "retries": "COUNT(*) FILTER (WHERE e.attempt > 1)",
        "cache_hits": "COUNT(*) FILTER (WHERE e.cache_hit)",
        "external_calls": "COUNT(*) FILTER (WHERE e.external)",
        "traced_calls": "COUNT(e.trace_id)",
        "root_calls": "COUNT(e.trace_id) FILTER (WHERE e.parent_span_id IS NULL)",
    }


_MEASURES = {
    # On PostgreSQL the sums are aggregates whose state is the running total itself (migration
    # 0011): SUM's per-group accumulators cost two thirds of a backfill's rollup time.
    "postgresql": _measures("percall_sum_bigint", "percall_sum_numeric"),
    "sqlite": _measures("SUM", "SUM"),
}
_INSERT_COLUMNS = ["tenant_id", "hour", *ROLLUP_DIMENSIONS, *ROLLUP_FLAGS, *_MEASURES["sqlite"]]
_HOUR_OF = {
    # date_bin is arithmetic on the stored microseconds; date_trunc on a timestamptz looks the
    # session's zone up for every row.
    "postgresql": """date_bin('1 hour', e."timestamp", TIMESTAMPTZ '2000-01-01 00:00:00+00')""",
    # Django stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC.
    "sqlite": """substr(e."timestamp", 1, 13) || ':00:00'""",
}
# A gap this long between claimed hours starts a new scan: a late event for last week should not
# drag a scan over every hour since. Dense claims become one scan however long: events arrive
# interleaved in time, so a short window would read most of the same pages again.
_WINDOW_GAP = timedelta(hours=6)
_WINDOW_SPAN = timedelta(days=32)
CLAIM_PAIRS = 20000  # queue rows per claim: each claim is a range scan, so fewer is faster
# The smallest share of a short queue: below it, one more scan costs more than the second
# worker saves.
MIN_SHARED_CLAIM = 1000


def rollup_pending_mark(*, tenant_hours: Iterable[TenantHourMark], marked_at: datetime) -> None:
    """Queue (tenant, hour) pairs for recomputation; call inside the writer's transaction."""
    rows_insert(
        table=RollupPending._meta.db_table,
        columns=("tenant_id", "hour", "marked_at"),
        types=("uuid", "timestamptz", "timestamptz"),
        rows=[(tenant_id, hour, marked_at) for tenant_id, hour in tenant_hours],
    )


def _claim_size(cursor: Any, limit: int, workers: int) -> int:
    """How many queue rows to claim: ``limit``, or this worker's share when the queue is
    shorter than ``workers`` full claims. One big claim is the fastest single scan, but it
    leaves the other workers idle; with two workers, equal shares finished a 21,600-hour
    backfill in about 0.8 of the time (``make bench``). Counts at most ``limit * workers``
    rows."""
    if workers <= 1:
        return limit
    cursor.execute(
        "SELECT count(*) FROM (SELECT 1 FROM metering_rollup_pending LIMIT %s) AS queued",
        [limit * workers],
    )
    queued = cursor.fetchone()[0]
    return min(limit, max(MIN_SHARED_CLAIM, -(-queued // workers)))


def _claim(limit: int, workers: int) -> list[TenantHour]:
    """Take up to ``limit`` queue rows (a share of a short queue), oldest hours first, and
    return their distinct pairs."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            limit = _claim_size(cursor, limit, workers)
            cursor.execute(
                "DELETE FROM metering_rollup_pending WHERE id IN (SELECT id FROM "
                "metering_rollup_pending ORDER BY hour, tenant_id LIMIT %s "
                "FOR UPDATE SKIP LOCKED) RETURNING tenant_id, hour",
                [limit],
            )
            return sorted(set(cursor.fetchall()))
    # SQLite: the IMMEDIATE transaction already holds the only write lock.
    claimed = list(
        RollupPending.objects.order_by("hour", "tenant_id")[:limit].values_list(
            "id", "tenant_id", "hour"
        )
    )
    RollupPending.objects.filter(id__in=[row[0] for row in claimed]).delete()
    return sorted({(tenant_id, hour) for _, tenant_id, hour in claimed})


def _hours_lock(cursor: Any, pairs: Sequence[TenantHour], now: datetime) -> None:
    """Take the row lock of every claimed hour (creating its row the first time), in
    (tenant, hour) order; on SQLite the transaction already holds the database's write lock."""
    if connection.vendor != "postgresql":
        adapt = connection.ops.adapt_datetimefield_value
        cursor.executemany(
            "INSERT INTO metering_rollup_hour (tenant_id, hour, rolled_up_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (tenant_id, hour) DO UPDATE SET rolled_up_at = excluded.rolled_up_at",
            [(tenant_id.hex, adapt(hour), adapt(now)) for tenant_id, hour in pairs],
        )
        return
    cursor.execute(
        "INSERT INTO metering_rollup_hour (tenant_id, hour, rolled_up_at) "
        "SELECT t, h, %s FROM unnest(%s::uuid[], %s::timestamptz[]) AS p(t, h) ORDER BY t, h "
        "ON CONFLICT (tenant_id, hour) DO UPDATE SET rolled_up_at = excluded.rolled_up_at",
        [now, [p[0] for p in pairs], [p[1] for p in pairs]],
    )


def _windows(pairs: Sequence[TenantHour]) -> list[list[TenantHour]]:
    """Cut pairs (sorted by hour) into runs of nearby hours, each worth one range scan."""
    windows: list[list[TenantHour]] = []
    for pair in sorted(pairs, key=lambda p: (p[1], p[0])):
        current = windows[-1] if windows else None
        if (
            current is None
            or pair[1] - current[-1][1] > _WINDOW_GAP
            or pair[1] - current[0][1] > _WINDOW_SPAN
        ):
            windows.append([pair])
        else:
            current.append(pair)
    return windows


def _recompute_window(cursor: Any, pairs: list[TenantHour]) -> None:
    """Delete and rebuild the rollup rows of ``pairs``, all within one short time window."""
    vendor = connection.vendor
    hour_of = _HOUR_OF["postgresql" if vendor == "postgresql" else "sqlite"]
    measures = ", ".join(_MEASURES["postgresql" if vendor == "postgresql" else "sqlite"].values())
    start, end = pairs[0][1], pairs[-1][1] + _HOUR
    tenants = sorted({tenant_id for tenant_id, _ in pairs})
    if vendor == "postgresql":
        source = "WITH c(tenant_id, hour) AS (SELECT * FROM unnest(%s::uuid[], %s::timestamptz[]))"
        params: list[Any] = [[p[0] for p in pairs], [p[1] for p in pairs]]
        tenant_filter = "e.tenant_id = ANY(%s::uuid[])"
        tenant_params: list[Any] = [tenants]
        bounds: list[Any] = [start, end]
    else:
        adapt = connection.ops.adapt_datetimefield_value
        source = f"WITH c(tenant_id, hour) AS (VALUES {', '.join('(%s, %s)' for _ in pairs)})"
        params = [value for t, h in pairs for value in (t.hex, adapt(h))]
        tenant_filter = f"e.tenant_id IN ({', '.join('%s' for _ in tenants)})"
        tenant_params = [t.hex for t in tenants]
        bounds = [adapt(start), adapt(end)]
    cursor.execute(
        f"{source} DELETE FROM metering_usage_rollup "
        "WHERE (tenant_id, hour) IN (SELECT tenant_id, hour FROM c)",
        params,
    )
    dimensions = ", ".join(_DIMENSION_SOURCES.values())
    if vendor == "postgresql":
        # Join the claimed pairs to their events by hashing: the planner, unable to know how
        # many events each pair holds, planned a claim of a few thousand pairs as an index
        # scan of every pair's tenant over the whole window, at up to five times the CPU.
        # For this statement only: the DELETE above is an index probe per pair, and hashed it
        # would scan the whole rollup table for every claim.
        cursor.execute("SET LOCAL enable_nestloop = off")
    cursor.execute(
        f"{source} INSERT INTO metering_usage_rollup ({', '.join(_INSERT_COLUMNS)}) "
        f"SELECT e.tenant_id, {hour_of}, {dimensions}, {measures} "
        f'FROM metering_event e WHERE e."timestamp" >= %s AND e."timestamp" < %s '
        f"AND {tenant_filter} AND (e.tenant_id, {hour_of}) IN (SELECT tenant_id, hour FROM c) "
        f"GROUP BY e.tenant_id, {hour_of}, {dimensions}",
        [*params, *bounds, *tenant_params],
    )
    if vendor == "postgresql":
        cursor.execute("RESET enable_nestloop")


def _purged(pairs: Sequence[TenantHour]) -> set[TenantHour]:
    """The pairs whose raw events retention has purged (read under the hours' locks)."""
    if not pairs:
        return set()
    hours = RollupHour.objects.filter(
        tenant_id__in={t for t, _ in pairs},
        hour__gte=min(h for _, h in pairs),
        hour__lte=max(h for _, h in pairs),
        purged_at__isnull=False,
    ).values_list("tenant_id", "hour")
    return set(hours) & set(pairs)


def _recompute(pairs: Sequence[TenantHour]) -> None:
    """Rebuild the rollup rows of ``pairs`` from raw events. Caller holds the transaction.

    An hour whose raw events retention purged is not rebuilt: its rollups were computed from
    every event and are the record now; a rebuild would count only what is left (an event
    backfilled into it later stays raw, unrolled, and shows in the intake check)."""
    with connection.cursor() as cursor:
        _hours_lock(cursor, pairs, timezone.now())
        purged = _purged(pairs)
        if purged:
            logger.warning(
                "rollup: %d purged (tenant, hour) pairs not rebuilt, e.g. %s",
                len(purged),
                min(purged),
            )
            pairs = [pair for pair in pairs if pair not in purged]
            if not pairs:
                return
        rows_insert(
            table=RollupChanged._meta.db_table,
            columns=("tenant_id", "hour"),
            types=("uuid", "timestamptz"),
            rows=list(pairs),
        )
        if connection.vendor == "postgresql":
            # Group by hashing: the planner, multiplying the dimensions' distinct counts,
            # expects a group per event and sorts them all, which measured 1.4x slower. Beyond
            # work_mem (x hash_mem_multiplier) the aggregate spills in batches, so each worker's
            # memory stays bounded; 256MB measured no faster than 64MB.
            cursor.execute("SET LOCAL enable_sort = off")
            cursor.execute("SET LOCAL work_mem = '64MB'")
        windows = _windows(pairs)
        event_statistics_refresh(start=windows[0][0][1], end=windows[-1][-1][1])
        for window in windows:
            _recompute_window(cursor, window)
            meter_rollups_recompute(cursor=cursor, pairs=window, meters=_meters())


def _meters() -> list[Meter]:
    return list(Meter.objects.order_by("id"))


def rollup_pending_run(
    *, batch_size: int = CLAIM_PAIRS, max_batches: int = 1000, workers: int | None = None
) -> int:
    """Recompute every queued (tenant, hour), up to ``batch_size`` queue rows per transaction,
    sharing a short queue between ``workers`` (``PERCALL_ROLLUP_WORKERS``; PostgreSQL only,
    SQLite has one writer). Returns how many distinct pairs were rebuilt. Safe to run twice or
    concurrently."""
    if workers is None:
        workers = settings.PERCALL_ROLLUP_WORKERS
    rebuilt = 0
    for _ in range(max_batches):
        with transaction.atomic():
            pairs = _claim(batch_size, workers)
            if not pairs:
                break
            _recompute(pairs)
        rebuilt += len(pairs)
    return rebuilt


def meter_rollups_rebuild(
    *, meter_id: int, after: datetime | None = None, chunk: int = CLAIM_PAIRS
) -> datetime | None:
    """Rebuild one meter's hourly rows for up to ``chunk`` rolled-up hours after ``after``
    (oldest first), under the same hour locks as the rollup. Returns the last hour done, to
    continue from, or None when every hour is done."""
    meter = Meter.objects.filter(id=meter_id).first()
    if meter is None:
        return None
    with transaction.atomic():
        # Purged hours keep the meter rows they have: their raw events are gone.
        hours = RollupHour.objects.filter(purged_at__isnull=True).order_by("hour", "tenant_id")
        if after is not None:
            hours = hours.filter(hour__gt=after)
        pairs = sorted(hours.values_list("tenant_id", "hour")[:chunk])
        if not pairs:
            return None
        last = max(h for _, h in pairs)
        # Whole hours only: the next chunk starts after ``last``.
        pairs.extend(
            RollupHour.objects.filter(hour=last, purged_at__isnull=True)
            .exclude(tenant_id__in=[t for t, h in pairs if h == last])
            .values_list("tenant_id", "hour")
        )
        pairs = sorted(set(pairs))
        with connection.cursor() as cursor:
            _hours_lock(cursor, pairs, timezone.now())
            for window in _windows(pairs):
                meter_rollups_recompute(cursor=cursor, pairs=window, meters=[meter])
    return last


@transaction.atomic
def rollup_rebuild(*, tenant_id: UUID, start: datetime, end: datetime) -> int:
    """Queue and rebuild every hour of one tenant in ``[start, end)`` (after a repair or
    retention change). Returns the number of hours queued."""
    # In UTC first: with a half-hour offset (+05:30) the local hour is not a UTC hour.
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    pairs = []
    while hour < end:
        pairs.append((tenant_id, hour))
        hour += _HOUR
    rollup_pending_mark(tenant_hours=pairs, marked_at=timezone.now())
    job_enqueue_on_commit(name="metering.rollup_pending")
    return len(pairs)
