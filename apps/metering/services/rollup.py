"""Hourly usage rollups: recompute each touched (tenant, hour) from raw events as a whole.

Idempotent by construction: a run deletes a pair's rollup rows and rebuilds them from the events,
so running twice gives the same rows and a late event is caught by the mark its batch left.
Concurrent runs claim disjoint queue rows (SKIP LOCKED) and take a transaction-level advisory
lock per pair, in sorted order, so two workers never rebuild one hour at the same time.
"""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from apps.core.bulk import rows_insert
from apps.core.jobs import job_enqueue_on_commit
from apps.metering.models import ROLLUP_DIMENSIONS, RollupPending

TenantHour = tuple[UUID, datetime]
_HOUR = timedelta(hours=1)

_DIMENSION_SOURCES = {"event_type": "e.type"} | {
    d: f"COALESCE(e.{d}, '')" for d in ROLLUP_DIMENSIONS if d != "event_type"
}
_MEASURES = {
    "events": "COUNT(*)",
    **{
        name: f"COALESCE(SUM(e.{name}), 0)"
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "credits",
            "quantity",
            "cost",
            "bytes_in",
            "bytes_out",
        )
    },
    "latency_ms_sum": "COALESCE(SUM(e.latency_ms), 0)",
    "latency_ms_max": "MAX(e.latency_ms)",
    "errors": "SUM(CASE WHEN e.status_code >= 400 THEN 1 ELSE 0 END)",
    "retries": "SUM(CASE WHEN e.attempt > 1 THEN 1 ELSE 0 END)",
    "cache_hits": "SUM(CASE WHEN e.cache_hit THEN 1 ELSE 0 END)",
    "external_calls": "SUM(CASE WHEN e.external THEN 1 ELSE 0 END)",
}
_INSERT_COLUMNS = ["tenant_id", "hour", *ROLLUP_DIMENSIONS, *_MEASURES]
_SELECT = ", ".join(["e.tenant_id", "c.hour", *_DIMENSION_SOURCES.values(), *_MEASURES.values()])
_GROUP = ", ".join(["e.tenant_id", "c.hour", *_DIMENSION_SOURCES.values()])
_JOIN = (
    'JOIN metering_event e ON e.tenant_id = c.tenant_id AND e."timestamp" >= c.hour '
    'AND e."timestamp" < c.hour_end'
)


def rollup_pending_mark(*, tenant_hours: Iterable[TenantHour], marked_at: datetime) -> None:
    """Queue (tenant, hour) pairs for recomputation; call inside the writer's transaction."""
    rows_insert(
        table=RollupPending._meta.db_table,
        columns=("tenant_id", "hour", "marked_at"),
        rows=[(tenant_id, hour, marked_at) for tenant_id, hour in tenant_hours],
    )


def _claim(limit: int) -> list[TenantHour]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "DELETE FROM metering_rollup_pending WHERE id IN (SELECT id FROM "
                "metering_rollup_pending ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
                "RETURNING tenant_id, hour",
                [limit],
            )
            return sorted(set(cursor.fetchall()))
    # SQLite: the IMMEDIATE transaction already holds the only write lock.
    claimed = list(
        RollupPending.objects.order_by("id")[:limit].values_list("id", "tenant_id", "hour")
    )
    RollupPending.objects.filter(id__in=[row[0] for row in claimed]).delete()
    return sorted({(tenant_id, hour) for _, tenant_id, hour in claimed})


def _recompute(pairs: Sequence[TenantHour]) -> None:
    """Rebuild the rollup rows of ``pairs`` from raw events. Caller holds the transaction."""
    columns = ", ".join(_INSERT_COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            keys = sorted({f"rollup:{tenant_id}:{hour.isoformat()}" for tenant_id, hour in pairs})
            cursor.execute(  # one round trip; ordered so that two runs cannot deadlock
                "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT hashtextextended(key, 0) AS k "
                "FROM unnest(%s::text[]) AS key ORDER BY 1) AS keys",
                [keys],
            )
            source = (
                "WITH c(tenant_id, hour, hour_end) AS "
                "(SELECT * FROM unnest(%s::uuid[], %s::timestamptz[], %s::timestamptz[]))"
            )
            params: list[Any] = [
                [p[0] for p in pairs],
                [p[1] for p in pairs],
                [p[1] + _HOUR for p in pairs],
            ]
            cursor.execute(
                f"{source} DELETE FROM metering_usage_rollup r USING c "
                "WHERE r.tenant_id = c.tenant_id AND r.hour = c.hour",
                params,
            )
        else:
            ops = connection.ops
            values = ", ".join("(%s, %s, %s)" for _ in pairs)
            source = f"WITH c(tenant_id, hour, hour_end) AS (VALUES {values})"
            params = []
            for tenant_id, hour in pairs:
                params += [
                    tenant_id.hex,
                    ops.adapt_datetimefield_value(hour),
                    ops.adapt_datetimefield_value(hour + _HOUR),
                ]
            cursor.execute(
                # A row-value IN uses the grain's unique index; a correlated EXISTS would
                # scan the whole rollup table for every run.
                f"{source} DELETE FROM metering_usage_rollup "
                "WHERE (tenant_id, hour) IN (SELECT tenant_id, hour FROM c)",
                params,
            )
        cursor.execute(
            f"{source} INSERT INTO metering_usage_rollup ({columns}) "
            f"SELECT {_SELECT} FROM c {_JOIN} GROUP BY {_GROUP}",
            params,
        )


def rollup_pending_run(*, batch_size: int = 500, max_batches: int = 1000) -> int:
    """Recompute every queued (tenant, hour), ``batch_size`` queue rows per transaction.
    Returns how many distinct pairs were rebuilt. Safe to run twice or concurrently."""
    rebuilt = 0
    for _ in range(max_batches):
        with transaction.atomic():
            pairs = _claim(batch_size)
            if not pairs:
                break
            _recompute(pairs)
        rebuilt += len(pairs)
    return rebuilt


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
