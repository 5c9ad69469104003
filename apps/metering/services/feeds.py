"""What data derived from usage reads from metering: the outbox of rebuilt hours, usage
rollups summed by UTC day, and the workflow runs and depths of raw traces.

The cost rollups (``apps.costs``) are the consumer; nothing here knows what they compute.
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from django.db import connection

from apps.metering.models import ROLLUP_DIMENSIONS, ROLLUP_FLAGS

TenantDay = tuple[UUID, date]
DAY_DIMENSIONS = (*ROLLUP_DIMENSIONS, *ROLLUP_FLAGS)
DAY_SUMS = (
    "events",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "credits",
    "cost",
    "latency_ms_sum",
    "errors",
    "retries",
    "traced_calls",
    "root_calls",
)
_DAY_OF = {
    "postgresql": "(r.hour AT TIME ZONE 'UTC')::date",
    "sqlite": "substr(r.hour, 1, 10)",
}
MAX_DEPTH = 64  # a span chain deeper than this is cut (and a cycle of bad parent ids ends)


def rollup_changes_claim(*, limit: int) -> list[TenantDay]:
    """Take up to ``limit`` rows of the rebuilt-hours outbox (SKIP LOCKED on PostgreSQL), in
    the caller's transaction, and return the distinct (tenant, UTC day) pairs they touch."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "DELETE FROM metering_rollup_changed WHERE id IN (SELECT id FROM "
                "metering_rollup_changed ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
                "RETURNING tenant_id, hour",
                [limit],
            )
            rows = cursor.fetchall()
        else:
            cursor.execute(
                "SELECT id, tenant_id, hour FROM metering_rollup_changed ORDER BY id LIMIT %s",
                [limit],
            )
            claimed = cursor.fetchall()
            cursor.executemany(
                "DELETE FROM metering_rollup_changed WHERE id = %s", [(r[0],) for r in claimed]
            )
            rows = [(UUID(str(t)), _sqlite_time(h)) for _, t, h in claimed]
    return sorted({(tenant, hour.astimezone(UTC).date()) for tenant, hour in rows})


def _sqlite_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def usage_by_day(*, tenant_days: Sequence[TenantDay]) -> list[dict[str, Any]]:
    """The usage rollups of each (tenant, UTC day) summed by every dimension and call class,
    plus ``cost_currency`` ('' where the events carried no cost of their own)."""
    if not tenant_days:
        return []
    vendor = "postgresql" if connection.vendor == "postgresql" else "sqlite"
    day_of = _DAY_OF[vendor]
    dims = ", ".join(f"r.{d}" for d in DAY_DIMENSIONS)
    sums = ", ".join(f"SUM(r.{s})" for s in DAY_SUMS)
    start, _ = _day_bounds(min(d for _, d in tenant_days))
    _, end = _day_bounds(max(d for _, d in tenant_days))
    tenants = sorted({t for t, _ in tenant_days})
    if vendor == "postgresql":
        source = "WITH c(tenant_id, day) AS (SELECT * FROM unnest(%s::uuid[], %s::date[]))"
        params: list[Any] = [[t for t, _ in tenant_days], [d for _, d in tenant_days]]
        tenant_filter = "r.tenant_id = ANY(%s::uuid[])"
        tenant_params: list[Any] = [tenants]
        bounds: list[Any] = [start, end]
    else:
        adapt = connection.ops.adapt_datetimefield_value
        source = f"WITH c(tenant_id, day) AS (VALUES {', '.join('(%s, %s)' for _ in tenant_days)})"
        params = [v for t, d in tenant_days for v in (t.hex, d.isoformat())]
        tenant_filter = f"r.tenant_id IN ({', '.join('%s' for _ in tenants)})"
        tenant_params = [t.hex for t in tenants]
        bounds = [adapt(start), adapt(end)]
    sql = (
        f"{source} SELECT r.tenant_id, {day_of}, {dims}, {sums} FROM metering_usage_rollup r "
        f"WHERE r.hour >= %s AND r.hour < %s AND {tenant_filter} "
        f"AND (r.tenant_id, {day_of}) IN (SELECT tenant_id, day FROM c) "
        f"GROUP BY r.tenant_id, {day_of}, {dims}"
    )
    names = ("tenant_id", "day", *DAY_DIMENSIONS, *DAY_SUMS)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *bounds, *tenant_params])
        rows = cursor.fetchall()
    out = []
    for row in rows:
        item = dict(zip(names, row, strict=True))
        if vendor == "sqlite":
            item["tenant_id"] = UUID(str(item["tenant_id"]))
            item["day"] = date.fromisoformat(item["day"])
            for flag in ROLLUP_FLAGS:
                item[flag] = bool(item[flag])
        out.append(item)
    return out


def workflow_runs_by_day(*, tenant_id: UUID, day: date) -> list[tuple[str, int, int, int]]:
    """(workflow of the root span, runs, calls, deepest chain) of the traces whose root span
    falls on ``day`` (UTC): a run is a root span (a traced call without a parent), its depth
    the longest parent-to-child chain from it within the day (1 = the root alone)."""
    start, end = _day_bounds(day)
    if connection.vendor == "postgresql":
        params: list[Any] = [tenant_id, start, end]
    else:
        adapt = connection.ops.adapt_datetimefield_value
        params = [tenant_id.hex, adapt(start), adapt(end)]
    sql = (
        "WITH RECURSIVE ev AS (SELECT trace_id, span_id, parent_span_id, "
        "COALESCE(workflow, '') AS workflow FROM metering_event WHERE tenant_id = %s "
        'AND "timestamp" >= %s AND "timestamp" < %s AND trace_id IS NOT NULL '
        "AND span_id IS NOT NULL), "
        "chain(trace_id, span_id, workflow, depth) AS ("
        "SELECT trace_id, span_id, workflow, 1 FROM ev WHERE parent_span_id IS NULL "
        "UNION ALL SELECT ev.trace_id, ev.span_id, chain.workflow, chain.depth + 1 FROM ev "
        "JOIN chain ON ev.trace_id = chain.trace_id AND ev.parent_span_id = chain.span_id "
        f"WHERE chain.depth < {MAX_DEPTH}) "
        "SELECT workflow, SUM(CASE WHEN depth = 1 THEN 1 ELSE 0 END), COUNT(*), MAX(depth) "
        "FROM chain GROUP BY workflow ORDER BY workflow"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(w, int(runs), int(calls), int(depth)) for w, runs, calls, depth in cursor]
