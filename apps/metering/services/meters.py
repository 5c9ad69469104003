"""Meters: what their definitions may name, the one write path, and the hourly meter rollups.

A meter's hourly aggregates (``MeterRollup``) are rebuilt with each (tenant, hour) the usage
rollup rebuilds, in the same transaction. A meter whose quantity the usage rollup already holds
(a count, or a sum of a well-known number, filtered and grouped by well-known dimensions) is
aggregated from those few rows; any other (properties, ``max``, ``latest``) scans the hour's raw
events. Unique counts are not additive over hours, so invoices count them from raw events.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import connection, transaction

from apps.metering.models import ROLLUP_DIMENSIONS, Meter, MeterRollup, RollupHour
from apps.metering.selectors import json_number_sql

# Numbers of an event a meter can sum, take the max or latest of.
NUMERIC_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "credits",
    "quantity",
    "cost",
    "latency_ms",
    "bytes_in",
    "bytes_out",
)
# Text attributes a meter can filter and group by (and count the unique values of).
TEXT_FIELDS = (
    "endpoint",
    "feature",
    "workflow",
    "team",
    "service",
    "environment",
    "provider",
    "model",
    "cost_currency",
    "user",
    "trace_id",
)
PROPERTY_PREFIX = "properties."
# The usage rollup's measure holding each summable number.
_ROLLUP_SUMS = {f: f for f in NUMERIC_FIELDS if f != "latency_ms"} | {
    "latency_ms": "latency_ms_sum"
}
_ROLLUP_DIMS = frozenset(d for d in ROLLUP_DIMENSIONS if d != "event_type")
_ROLLUP_DIM_NAMES = tuple(sorted(_ROLLUP_DIMS))
_HOUR = timedelta(hours=1)
_KEY_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")


class MeterFieldInvalid(ValueError):
    pass


def property_key(field: str) -> str | None:
    """The properties key a field names ('properties.user_id' -> 'user_id'), else None."""
    if not field.startswith(PROPERTY_PREFIX):
        return None
    key = field.removeprefix(PROPERTY_PREFIX)
    if not key or not _KEY_CHARACTERS.issuperset(key) or len(key) > 100:
        raise MeterFieldInvalid(f"{field!r}: a properties key is 1-100 letters, digits and _ . : -")
    return key


def dimension_check(name: str) -> None:
    """Raise MeterFieldInvalid unless ``name`` can filter or group a meter."""
    if property_key(name) is None and name not in TEXT_FIELDS:
        raise MeterFieldInvalid(
            f"{name!r} is not one of {', '.join(TEXT_FIELDS)} or properties.<key>"
        )


def value_field_check(aggregation: str, field: str) -> None:
    """Raise MeterFieldInvalid unless ``field`` suits ``aggregation``."""
    if aggregation == Meter.Aggregation.COUNT:
        if field:
            raise MeterFieldInvalid(f"{field!r}: a count meter takes no field")
        return
    if not field:
        raise MeterFieldInvalid(f"a {aggregation} meter needs a field")
    if property_key(field) is not None:
        return
    allowed = TEXT_FIELDS if aggregation == Meter.Aggregation.UNIQUE_COUNT else NUMERIC_FIELDS
    if field not in allowed:
        raise MeterFieldInvalid(f"{field!r} is not one of {', '.join(allowed)} or properties.<key>")


@dataclass(frozen=True)
class MeterSpec:
    code: str
    event_type: str
    aggregation: str
    field: str = ""
    filters: tuple[tuple[str, str], ...] = ()
    group_by: tuple[str, ...] = ()
    name: str = ""


def meter_matches(meter: Meter, spec: MeterSpec) -> bool:
    return (
        meter.event_type == spec.event_type
        and meter.aggregation == spec.aggregation
        and meter.field == spec.field
        and dict(meter.filters or {}) == dict(spec.filters)
        and list(meter.group_by or []) == list(spec.group_by)
        and meter.name == spec.name
    )


@transaction.atomic
def meter_upsert(*, spec: MeterSpec) -> tuple[Meter, str]:
    """Create or change a meter; returns it and 'created', 'updated' or 'unchanged'. A new or
    changed definition has its hourly aggregates rebuilt from the raw events still kept."""
    value_field_check(spec.aggregation, spec.field)
    for name in (*dict(spec.filters), *spec.group_by):
        dimension_check(name)
    meter = Meter.objects.select_for_update().filter(code=spec.code).first()
    if meter is not None and meter_matches(meter, spec):
        return meter, "unchanged"
    outcome = "created" if meter is None else "updated"
    meter = meter or Meter(code=spec.code)
    meter.name = spec.name
    meter.event_type = spec.event_type
    meter.aggregation = spec.aggregation
    meter.field = spec.field
    meter.filters = dict(spec.filters)
    meter.group_by = list(spec.group_by)
    meter.full_clean()
    meter.save()
    if RollupHour.objects.exists():  # hours rolled up before this definition existed
        meter_rollups_rebuild_queue(meter_id=meter.id)
    return meter, outcome


def meter_rollups_rebuild_queue(*, meter_id: int) -> None:
    from apps.core.jobs import job_enqueue_on_commit

    job_enqueue_on_commit(name="metering.meter_rollups_rebuild", kwargs={"meter_id": meter_id})


# --- SQL ----------------------------------------------------------------------------------


def _derivable(meter: Meter) -> bool:
    """Whether the usage rollup already holds this meter's hourly quantity."""
    names = [*dict(meter.filters or {}), *(meter.group_by or [])]
    if any(name not in _ROLLUP_DIMS for name in names):
        return False
    if meter.aggregation == Meter.Aggregation.COUNT:
        return True
    if meter.aggregation == Meter.Aggregation.SUM:
        return meter.field in _ROLLUP_SUMS
    return meter.aggregation == Meter.Aggregation.MAX and meter.field == "latency_ms"


def _column(field: str, allowed: tuple[str, ...]) -> str:
    """``field`` as a column name of the event table, only when it is one of ``allowed``.

    Meter definitions and charge filters are checked where they are written (catalog_apply,
    meter_upsert, the admin's forms), but they reach SQL as text from the database: checked
    again here, a row written any other way fails rather than becoming part of a statement."""
    if field not in allowed:
        raise MeterFieldInvalid(f"{field!r} is not one of {', '.join(allowed)} or properties.<key>")
    return field


class _Sql:
    """Vendor spellings. Column names come from the allowlists above; properties keys and
    every value travel as parameters, never text."""

    def __init__(self) -> None:
        self.pg = connection.vendor == "postgresql"

    def text(self, alias: str, field: str, params: list[Any]) -> str:
        key = property_key(field)
        if key is None:
            return f"{alias}.{_column(field, TEXT_FIELDS)}"
        params.append(key if self.pg else f'$."{key}"')
        if self.pg:
            return f"({alias}.properties ->> %s)"
        return f"CAST(json_extract({alias}.properties, %s) AS TEXT)"

    def number(self, alias: str, field: str, params: list[Any]) -> str:
        key = property_key(field)
        if key is None:
            return f"{alias}.{_column(field, NUMERIC_FIELDS)}"
        sql, key_params = json_number_sql(f"{alias}.properties", key, postgresql=self.pg)
        params.extend(key_params)
        return sql

    def group_key(self, values: list[str]) -> str:
        inner = ", ".join(f"COALESCE({v}, '')" for v in values)
        return f"json_build_array({inner})::text" if self.pg else f"json_array({inner})"


def _pairs_source(sql: _Sql, pairs: Sequence[tuple[UUID, datetime]]) -> tuple[str, list[Any]]:
    if sql.pg:
        return (
            "c(tenant_id, hour) AS (SELECT * FROM unnest(%s::uuid[], %s::timestamptz[]))",
            [[p[0] for p in pairs], [p[1] for p in pairs]],
        )
    adapt = connection.ops.adapt_datetimefield_value
    values = ", ".join("(%s, %s)" for _ in pairs)
    return f"c(tenant_id, hour) AS (VALUES {values})", [
        v for t, h in pairs for v in (t.hex, adapt(h))
    ]


# Typed NULLs: the meters' SELECTs are joined by UNION ALL, which needs one type per column.
_NO_NUMBER = "CAST(NULL AS NUMERIC)"
_NO_TIME = "CAST(NULL AS TIMESTAMPTZ)"
_INSERT = (
    "INSERT INTO metering_meter_rollup "
    "(meter_id, tenant_id, hour, group_key, events, sum, max, latest, latest_at) "
)


def _from_usage(sql: _Sql, meter: Meter, params: list[Any]) -> str:
    """SELECT of one derivable meter's rows from ``u``, the claimed hours' usage rollup rows."""
    where = ["r.event_type = %s"]
    params_where: list[Any] = [meter.event_type]
    for name, value in (meter.filters or {}).items():
        where.append(f"r.{_column(name, _ROLLUP_DIM_NAMES)} = %s")
        params_where.append(value)
    groups = [f"r.{_column(g, _ROLLUP_DIM_NAMES)}" for g in meter.group_by or []]
    column = _ROLLUP_SUMS.get(meter.field, "")
    if meter.aggregation == Meter.Aggregation.COUNT:
        measures = f"SUM(r.events), {_NO_NUMBER}, {_NO_NUMBER}"
    elif meter.aggregation == Meter.Aggregation.SUM:
        measures = f"SUM(r.events), SUM(r.{column}), {_NO_NUMBER}"
    else:
        measures = f"SUM(r.events), {_NO_NUMBER}, MAX(r.latency_ms_max)"
    params.append(meter.id)
    params.extend(params_where)
    group_by = ", ".join(["r.tenant_id", "r.hour", *groups])
    return (
        f"SELECT %s, r.tenant_id, r.hour, {sql.group_key(groups)}, {measures}, {_NO_NUMBER}, "
        f"{_NO_TIME} FROM u r WHERE {' AND '.join(where)} GROUP BY {group_by}"
    )


def _from_events(
    sql: _Sql,
    meter: Meter,
    params: list[Any],
    start: datetime,
    end: datetime,
    tenants: list[UUID],
) -> str:
    """SELECT of one meter's rows from the raw events of the claimed hours (within
    ``[start, end)``, the window's range, and of ``tenants``, the claimed pairs' tenants)."""
    hour = (
        """date_bin('1 hour', e."timestamp", TIMESTAMPTZ '2000-01-01 00:00:00+00')"""
        if sql.pg
        else """substr(e."timestamp", 1, 13) || ':00:00'"""
    )
    # Each fragment keeps its own parameters; they are joined in the order the text reads.
    group_params: list[Any] = []
    group_key = sql.group_key([sql.text("e", g, group_params) for g in meter.group_by or []])
    value_params: list[Any] = []
    value = _NO_NUMBER
    if meter.field and meter.aggregation != Meter.Aggregation.UNIQUE_COUNT:
        value = sql.number("e", meter.field, value_params)
    adapt = connection.ops.adapt_datetimefield_value
    where = ['e."timestamp" >= %s', 'e."timestamp" < %s', "e.type = %s"]
    where_params: list[Any] = [start, end] if sql.pg else [adapt(start), adapt(end)]
    where_params.append(meter.event_type)
    if sql.pg:  # as the usage rollup scans them: one range scan, joined to the pairs by hashing
        where.append("e.tenant_id = ANY(%s::uuid[])")
        where_params.append(tenants)
    for name, wanted in (meter.filters or {}).items():
        where.append(f"{sql.text('e', name, where_params)} = %s")
        where_params.append(wanted)
    where.append(f"(e.tenant_id, {hour}) IN (SELECT tenant_id, hour FROM c)")
    latest = meter.aggregation == Meter.Aggregation.LATEST
    order = ""
    if latest:  # the hour's last event per group, by time then id
        order = (
            f", ROW_NUMBER() OVER (PARTITION BY e.tenant_id, {hour}, {group_key} "
            'ORDER BY e."timestamp" DESC, e.event_id DESC) AS n'
        )
    params.extend([meter.id, *group_params, *value_params])
    if latest:
        params.extend(group_params)
    params.extend(where_params)
    rows = (
        f'SELECT e.tenant_id AS t, {hour} AS h, {group_key} AS g, {value} AS v, e."timestamp" '
        f"AS at{order} FROM metering_event e WHERE {' AND '.join(where)}"
    )
    newest = (
        "MAX(CASE WHEN n = 1 THEN v END), MAX(CASE WHEN n = 1 THEN at END)"
        if latest
        else f"{_NO_NUMBER}, {_NO_TIME}"
    )
    return (
        f"SELECT %s, t, h, g, COUNT(*), SUM(v), MAX(v), {newest} FROM ({rows}) AS m "
        "GROUP BY t, h, g"
    )


def meter_rollups_recompute(
    *, cursor: Any, pairs: Sequence[tuple[UUID, datetime]], meters: Sequence[Meter]
) -> None:
    """Rebuild ``meters``' rows for the claimed (tenant, hour) ``pairs``, whose usage rollup
    rows are already rebuilt in this transaction (and whose hour locks it holds)."""
    if not pairs or not meters:
        return
    sql = _Sql()
    source, source_params = _pairs_source(sql, pairs)
    ids = [m.id for m in meters]
    marks = ", ".join("%s" for _ in ids)
    cursor.execute(
        f"WITH {source} DELETE FROM metering_meter_rollup WHERE meter_id IN ({marks}) "
        "AND (tenant_id, hour) IN (SELECT tenant_id, hour FROM c)",
        [*source_params, *ids],
    )
    hours = sorted({h for _, h in pairs})
    start, end = hours[0], hours[-1] + _HOUR
    tenants = sorted({t for t, _ in pairs})
    selects: list[str] = []
    params: list[Any] = []
    usage_types: set[str] = set()
    for meter in meters:
        # Unique counts are not additive: from the events of each hour only.
        if meter.aggregation != Meter.Aggregation.UNIQUE_COUNT and _derivable(meter):
            selects.append(_from_usage(sql, meter, params))
            usage_types.add(meter.event_type)
        else:
            selects.append(_from_events(sql, meter, params, start, end, tenants))
    if usage_types:
        # The claimed hours' usage rows of those types, found once for every derivable meter:
        # each meter probing the rollup table for every pair cost a 20,000-pair claim about
        # 0.35 s per meter (``make bench``, billing set-up). On PostgreSQL one range scan of
        # the window's tenants, kept to the pairs by hashing, as the raw events are.
        types = sorted(usage_types)
        where = (
            "(tenant_id, hour) IN (SELECT tenant_id, hour FROM c) "
            f"AND event_type IN ({', '.join('%s' for _ in types)})"
        )
        where_params: list[Any] = types
        if sql.pg:
            where = f"tenant_id = ANY(%s::uuid[]) AND hour >= %s AND hour < %s AND {where}"
            where_params = [tenants, start, end, *types]
        materialized = "MATERIALIZED " if sql.pg else ""
        source += f", u AS {materialized}(SELECT * FROM metering_usage_rollup WHERE {where})"
        source_params = [*source_params, *where_params]
    if sql.pg:
        # Probing the events or the rollup rows of every pair through an index (the plan the
        # planner picks, expecting a few pairs) took twice the CPU of a range scan and a hash.
        # Without JIT: where some meter's part still needs a nested loop, its penalty cost made
        # JIT compile and optimize the whole statement, about a second for a one-hour claim.
        cursor.execute("SET LOCAL enable_nestloop = off")
        cursor.execute("SET LOCAL jit = off")
    cursor.execute(
        f"WITH {source} {_INSERT} {' UNION ALL '.join(selects)}", [*source_params, *params]
    )
    if sql.pg:
        cursor.execute("RESET enable_nestloop")
        cursor.execute("RESET jit")


def meter_rollup_rows(
    *, meter_ids: Sequence[int], tenant_ids: Sequence[UUID], start: datetime, end: datetime
) -> list[MeterRollup]:
    """The hourly rows of some meters and tenants in ``[start, end)`` (whole UTC hours)."""
    return list(
        MeterRollup.objects.filter(
            meter_id__in=meter_ids, tenant_id__in=tenant_ids, hour__gte=start, hour__lt=end
        )
    )


def windows_distinct_sql(
    *,
    meter: Meter,
    windows: Sequence[tuple[UUID, datetime, datetime]],
    also: dict[str, str],
) -> tuple[str, list[Any]]:
    """SQL counting a unique-count meter's distinct values per (tenant, start, end) window:
    rows (tenant, window start, count). Raw events, joined to the windows as a list."""
    sql = _Sql()
    adapt = connection.ops.adapt_datetimefield_value
    if sql.pg:
        source = (
            "SELECT * FROM unnest(%s::uuid[], %s::timestamptz[], %s::timestamptz[]) AS w(t, s, e)"
        )
        source_params: list[Any] = [[list(column) for column in zip(*windows, strict=True)]][0]
    else:
        source = " UNION ALL ".join("SELECT %s AS t, %s AS s, %s AS e" for _ in windows)
        source_params = [v for t, s, e in windows for v in (t.hex, adapt(s), adapt(e))]
    value_params: list[Any] = []
    value = sql.text("e", meter.field, value_params)
    where = ["e.type = %s"]
    where_params: list[Any] = [meter.event_type]
    for name, wanted in {**(meter.filters or {}), **also}.items():
        where.append(f"{sql.text('e', name, where_params)} = %s")
        where_params.append(wanted)
    query = (
        f"SELECT w.t, w.s, COUNT(DISTINCT {value}) FROM metering_event e JOIN ({source}) AS w "
        'ON e.tenant_id = w.t AND e."timestamp" >= w.s AND e."timestamp" < w.e '
        f"WHERE {' AND '.join(where)} GROUP BY w.t, w.s"
    )
    return query, [*value_params, *source_params, *where_params]
