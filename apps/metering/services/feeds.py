"""What data derived from usage reads from metering: the outbox of rebuilt hours, usage
rollups summed by UTC day, and the workflow runs and depths of raw traces.

The cost rollups (``apps.costs``) are the consumer; nothing here knows what they compute.
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from django.db import connection

from apps.metering.models import ROLLUP_DIMENSIONS, ROLLUP_FLAGS, RollupHour

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


def purged_days(*, tenant_days: Sequence[TenantDay]) -> set[TenantDay]:
    """The (tenant, UTC day) pairs with an hour whose raw events retention purged: what is
    derived from raw events there (workflow runs and depths) can no longer be recomputed, and
    the rows already derived are kept."""
    if not tenant_days:
        return set()
    start, _ = _day_bounds(min(d for _, d in tenant_days))
    _, end = _day_bounds(max(d for _, d in tenant_days))
    hours = RollupHour.objects.filter(
        tenant_id__in={t for t, _ in tenant_days},
        hour__gte=start,
        hour__lt=end,
        purged_at__isnull=False,
    ).values_list("tenant_id", "hour")
    return {(t, h.astimezone(UTC).date()) for t, h in hours} & set(tenant_days)


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
    pairs, params, tenant_filter, tenant_params = tenant_days_cte(tenant_days)
    source = f"WITH {pairs}"
    tenant_filter = tenant_filter.replace("e.tenant_id", "r.tenant_id")
    if vendor == "postgresql":
        bounds: list[Any] = [start, end]
    else:
        adapt = connection.ops.adapt_datetimefield_value
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


def tenant_days_cte(tenant_days: Sequence[TenantDay]) -> tuple[str, list[Any], str, list[Any]]:
    """The pairs as a CTE ``c(tenant_id, day)`` and a tenant filter on alias ``e``, with their
    parameters, for PostgreSQL (arrays) or SQLite (values)."""
    tenants = sorted({t for t, _ in tenant_days})
    if connection.vendor == "postgresql":
        return (
            "c(tenant_id, day) AS (SELECT * FROM unnest(%s::uuid[], %s::date[]))",
            [[t for t, _ in tenant_days], [d for _, d in tenant_days]],
            "e.tenant_id = ANY(%s::uuid[])",
            [tenants],
        )
    return (
        f"c(tenant_id, day) AS (VALUES {', '.join('(%s, %s)' for _ in tenant_days)})",
        [v for t, d in tenant_days for v in (t.hex, d.isoformat())],
        f"e.tenant_id IN ({', '.join('%s' for _ in tenants)})",
        [t.hex for t in tenants],
    )


_EVENT_DAY = {
    "postgresql": """(e."timestamp" AT TIME ZONE 'UTC')::date""",
    "sqlite": """substr(e."timestamp", 1, 10)""",
}


def workflow_runs_by_day(
    *, tenant_days: Sequence[TenantDay]
) -> list[tuple[UUID, date, str, int, int, int]]:
    """(tenant, day, workflow of the root span, runs, calls, deepest chain) of the traces whose
    root span falls on each (tenant, UTC day), in one query: a run is a root span (a traced call
    without a parent), its depth the longest parent-to-child chain from it within the day (1 =
    the root alone). A span sent twice (a retried send of the same span id) counts once."""
    if not tenant_days:
        return []
    vendor = "postgresql" if connection.vendor == "postgresql" else "sqlite"
    pairs, pair_params, tenant_filter, tenant_params = tenant_days_cte(tenant_days)
    start, _ = _day_bounds(min(d for _, d in tenant_days))
    _, end = _day_bounds(max(d for _, d in tenant_days))
    if vendor == "postgresql":
        bounds: list[Any] = [start, end]
    else:
        adapt = connection.ops.adapt_datetimefield_value
        bounds = [adapt(start), adapt(end)]
    day_of = _EVENT_DAY[vendor]
    sql = (
        f"WITH RECURSIVE {pairs}, "
        f"ev AS (SELECT DISTINCT e.tenant_id, {day_of} AS day, e.trace_id, e.span_id, "
        "e.parent_span_id, COALESCE(e.workflow, '') AS workflow FROM metering_event e "
        f'WHERE e."timestamp" >= %s AND e."timestamp" < %s AND {tenant_filter} '
        "AND e.trace_id IS NOT NULL AND e.span_id IS NOT NULL "
        f"AND (e.tenant_id, {day_of}) IN (SELECT tenant_id, day FROM c)), "
        "chain(tenant_id, day, trace_id, span_id, workflow, depth) AS ("
        "SELECT tenant_id, day, trace_id, span_id, workflow, 1 FROM ev "
        "WHERE parent_span_id IS NULL "
        "UNION ALL SELECT ev.tenant_id, ev.day, ev.trace_id, ev.span_id, chain.workflow, "
        "chain.depth + 1 FROM ev JOIN chain ON ev.tenant_id = chain.tenant_id "
        "AND ev.day = chain.day AND ev.trace_id = chain.trace_id "
        f"AND ev.parent_span_id = chain.span_id WHERE chain.depth < {MAX_DEPTH}) "
        "SELECT tenant_id, day, workflow, SUM(CASE WHEN depth = 1 THEN 1 ELSE 0 END), "
        "COUNT(*), MAX(depth) FROM chain GROUP BY tenant_id, day, workflow "
        "ORDER BY tenant_id, day, workflow"
    )
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            # The planner cannot estimate a recursion and prices it high enough to JIT-compile
            # it, which costs more than running it.
            cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, [*pair_params, *bounds, *tenant_params])
        rows = cursor.fetchall()
    out = []
    for tenant, day, workflow, runs, calls, depth in rows:
        if vendor == "sqlite":
            tenant, day = UUID(str(tenant)), date.fromisoformat(day)
        out.append((tenant, day, workflow, int(runs), int(calls), int(depth)))
    return out
