"""Read path for usage: rollup series, meter quantities and the 3-way intake check.

Every function takes the caller's tenant scope: ``scope_tenant_id`` None is the operator, any
other value restricts reads to that tenant (a foreign tenant reads as not found).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db.models import Count, DecimalField, F, Func, Max, Min, QuerySet, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, TruncDay

from apps.metering.errors import UsageQueryInvalid
from apps.metering.models import (
    ROLLUP_DIMENSIONS,
    Event,
    IngestTally,
    Meter,
    RollupHour,
    RollupPending,
    UsageRollup,
)

USAGE_GROUPS = ("tenant", *(d for d in ROLLUP_DIMENSIONS if d != "cost_currency"))
USAGE_SUMS = (
    "events",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "credits",
    "quantity",
    "cost",
    "errors",
    "retries",
    "cache_hits",
    "external_calls",
    "bytes_in",
    "bytes_out",
    "latency_ms_sum",
)
MAX_RANGE = timedelta(days=400)


@dataclass(frozen=True)
class RollupLag:
    """The rollup queue as it stands: how many (tenant, hour) rows wait, for how many tenants,
    and when the oldest was marked (None when nothing waits)."""

    pending: int
    tenants: int
    oldest_marked_at: datetime | None
    oldest_hour: datetime | None

    def seconds(self, now: datetime) -> float:
        """Age of the oldest waiting row; 0 when none waits."""
        if self.oldest_marked_at is None:
            return 0.0
        return max((now - self.oldest_marked_at).total_seconds(), 0.0)


def rollup_lag() -> RollupLag:
    """The rollup queue's size and age, in one query (operator-wide)."""
    queue = RollupPending.objects.aggregate(
        pending=Count("id"),
        tenants=Count("tenant_id", distinct=True),
        oldest=Min("marked_at"),
        hour=Min("hour"),
    )
    return RollupLag(queue["pending"], queue["tenants"], queue["oldest"], queue["hour"])


def rollup_pending_marks(
    *, tenant_ids: set[UUID], before: datetime, marked_by: datetime
) -> dict[UUID, list[tuple[datetime, datetime]]]:
    """For each of ``tenant_ids``, the hours before ``before`` still waiting to be rolled up
    with when each was first marked (at or before ``marked_by``): usage that had arrived by
    then and is not in the rollups yet. Read in one query, one row per (tenant, hour)."""
    if not tenant_ids:
        return {}
    rows = (
        RollupPending.objects.filter(
            tenant_id__in=tenant_ids, hour__lt=before, marked_at__lte=marked_by
        )
        .values("tenant_id", "hour")
        .annotate(first_marked=Min("marked_at"))
        .order_by()
    )
    marks: dict[UUID, list[tuple[datetime, datetime]]] = {}
    for row in rows:
        marks.setdefault(row["tenant_id"], []).append((row["hour"], row["first_marked"]))
    return marks


@dataclass(frozen=True)
class UsageQuery:
    start: datetime
    end: datetime
    group_by: tuple[str, ...] = ()
    granularity: str = "hour"  # or "day", in the tenant's timezone


def usage_query_check(query: UsageQuery) -> None:
    if query.end <= query.start:
        raise UsageQueryInvalid("to: must be after from", field="to")
    if query.end - query.start > MAX_RANGE:
        raise UsageQueryInvalid(f"to: the range may span at most {MAX_RANGE.days} days", field="to")
    if query.granularity not in ("hour", "day"):
        raise UsageQueryInvalid(
            f"granularity: {query.granularity!r} is not one of hour, day", field="granularity"
        )
    for name in query.group_by:
        if name not in USAGE_GROUPS:
            raise UsageQueryInvalid(
                f"group_by: {name!r} is not one of {', '.join(USAGE_GROUPS)}", field="group_by"
            )


def usage_series(
    *, tenant_id: UUID | None, timezone_name: str, query: UsageQuery
) -> list[dict[str, Any]]:
    """Usage per hour (or local day) and group, from the hourly rollups, oldest first.

    ``tenant_id`` None sums all tenants (operator only; the view enforces that). Costs are
    always split by ``cost_currency`` since amounts in different currencies do not add up.
    Days are calendar days in ``timezone_name``; hours are UTC hours.
    """
    usage_query_check(query)
    rows = UsageRollup.objects.filter(hour__gte=query.start, hour__lt=query.end)
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    bucket = (
        TruncDay("hour", tzinfo=ZoneInfo(timezone_name)) if query.granularity == "day" else None
    )
    fields = ["tenant__external_id" if g == "tenant" else g for g in query.group_by]
    rows = rows.annotate(bucket=bucket if bucket is not None else F("hour"))
    sums = {name: Sum(name) for name in USAGE_SUMS}
    series = (
        rows.values("bucket", *fields, "cost_currency")
        .annotate(**sums, latency_ms_max=Max("latency_ms_max"))
        .order_by("bucket", *fields, "cost_currency")
    )
    result = []
    for row in series:
        item: dict[str, Any] = {"start": row.pop("bucket")}
        if "tenant__external_id" in row:
            item["tenant"] = row.pop("tenant__external_id")
        item.update(row)
        result.append(item)
    return result


@dataclass(frozen=True)
class IntakeCheck:
    """The three counts of one tenant-hour: events ingest said it stored, raw events in the
    store, events the rollup counted; ``pending`` when a rollup for that hour is still queued."""

    tenant_id: UUID
    hour: datetime
    ingested: int
    stored: int
    rolled_up: int
    stored_tokens: int
    rolled_up_tokens: int
    pending: bool
    purged: bool = False  # retention deleted the hour's raw events: ``stored`` is what is left

    @property
    def balanced(self) -> bool:
        if self.purged:  # the raw side is gone by design; intake and rollups still agree
            return self.ingested == self.rolled_up
        return (
            self.ingested == self.stored == self.rolled_up
            and self.stored_tokens == self.rolled_up_tokens
        )


def usage_intake_check(*, tenant_id: UUID, hour: datetime) -> IntakeCheck:
    """Compare intake tallies, raw events and rollups for one tenant and UTC hour."""
    # In UTC first: with a half-hour offset (+05:30) the local hour is not a UTC hour.
    hour = hour.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    ingested = IngestTally.objects.filter(tenant_id=tenant_id, hour=hour).aggregate(
        n=Coalesce(Sum("accepted"), 0)
    )["n"]
    raw = Event.objects.filter(
        tenant_id=tenant_id, timestamp__gte=hour, timestamp__lt=hour + timedelta(hours=1)
    ).aggregate(
        n=Count("*"),
        tokens=Coalesce(Sum("input_tokens"), 0) + Coalesce(Sum("output_tokens"), 0),
    )
    rolled = UsageRollup.objects.filter(tenant_id=tenant_id, hour=hour).aggregate(
        n=Coalesce(Sum("events"), 0),
        tokens=Coalesce(Sum("input_tokens"), 0) + Coalesce(Sum("output_tokens"), 0),
    )
    return IntakeCheck(
        tenant_id=tenant_id,
        hour=hour,
        ingested=ingested,
        stored=raw["n"],
        rolled_up=rolled["n"],
        stored_tokens=raw["tokens"],
        rolled_up_tokens=rolled["tokens"],
        pending=RollupPending.objects.filter(tenant_id=tenant_id, hour=hour).exists(),
        purged=RollupHour.objects.filter(
            tenant_id=tenant_id, hour=hour, purged_at__isnull=False
        ).exists(),
    )


def purged_hours(
    *, tenant_ids: list[UUID], start: datetime, end: datetime
) -> set[tuple[UUID, datetime]]:
    """The (tenant, UTC hour) pairs in ``[start, end)`` whose raw events retention purged:
    readers comparing raw events with rollups leave them out."""
    return set(
        RollupHour.objects.filter(
            tenant_id__in=tenant_ids, hour__gte=start, hour__lt=end, purged_at__isnull=False
        ).values_list("tenant_id", "hour")
    )


def usage_intake_hours(*, tenant_id: UUID, start: datetime, end: datetime) -> list[datetime]:
    """The UTC hours in ``[start, end)`` where anything was ingested for the tenant."""
    return list(
        IngestTally.objects.filter(tenant_id=tenant_id, hour__gte=start, hour__lt=end)
        .values_list("hour", flat=True)
        .distinct()
        .order_by("hour")
    )


def meter_get(*, code: str) -> Meter:
    return Meter.objects.get(code=code)


def _meter_events(
    meter: Meter,
    tenant_id: UUID,
    start: datetime,
    end: datetime,
    also: dict[str, str] | None = None,
) -> QuerySet[Event]:
    events = Event.objects.filter(
        tenant_id=tenant_id, type=meter.event_type, timestamp__gte=start, timestamp__lt=end
    )
    for key, value in {**(meter.filters or {}), **(also or {})}.items():
        events = events.filter(**{_lookup(key): value})
    return events


def _lookup(field: str) -> str:
    """A meter's field name as an ORM lookup: 'properties.user_id' -> 'properties__user_id'
    (the key taken literally: 'properties.gen_ai.system' is the key 'gen_ai.system')."""
    if field.startswith("properties."):
        return "properties__" + field.removeprefix("properties.")
    return field


def json_number_sql(column: str, key: str, *, postgresql: bool) -> tuple[str, list[Any]]:
    """SQL reading ``key`` of the JSON ``column`` as an exact decimal when it is a JSON number,
    else NULL (a string, a boolean or an object counts as no value), and its parameters. The
    one spelling for the meter rollups' SQL and for ``meter_quantities``."""
    if postgresql:
        sql = (
            f"CASE WHEN jsonb_typeof({column} -> %s) = 'number' THEN ({column} ->> %s)::numeric END"
        )
        return sql, [key, key]
    path = f'$."{key}"'
    sql = (
        f"CASE WHEN json_type({column}, %s) IN ('integer', 'real') "
        f"THEN json_extract({column}, %s) END"
    )
    return sql, [path, path]


class _PropertyNumber(Func):
    """A property of an event as ``json_number_sql`` reads it, in an ORM query."""

    output_field = DecimalField(max_digits=38, decimal_places=12)

    def __init__(self, key: str) -> None:
        super().__init__(F("properties"))
        self.key = key

    def as_sql(
        self,
        compiler: Any,
        connection: Any,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> tuple[str, list[Any]]:
        column, column_params = compiler.compile(self.source_expressions[0])
        assert not column_params  # a plain column: no parameters to repeat
        return json_number_sql(column, self.key, postgresql=connection.vendor == "postgresql")


def _value(field: str, *, numeric: bool) -> Any:
    """An expression for a meter's value field; JSON properties are read as text, or as an
    exact decimal (JSON numbers only) when they are summed or compared."""
    if not field.startswith("properties."):
        return F(field)
    if numeric:
        return _PropertyNumber(field.removeprefix("properties."))
    return KT(_lookup(field))


def meter_quantities(
    *,
    meter: Meter,
    tenant_id: UUID,
    start: datetime,
    end: datetime,
    also: dict[str, str] | None = None,
    grouped: bool = True,
) -> dict[tuple[Any, ...], Decimal]:
    """The meter's quantity in ``[start, end)`` per group-by key (``()`` without group-by, or
    with ``grouped`` False), computed from raw events: the reference that faster aggregate paths
    are tested against, and how invoices count unique values and read latest ones. ``also``
    adds equality filters (a charge's), on top of the meter's own."""
    events = _meter_events(meter, tenant_id, start, end, also)
    group_by = (meter.group_by or []) if grouped else []
    groups = {f"g{i}": _value(g, numeric=False) for i, g in enumerate(group_by)}
    events = events.annotate(**groups)
    names = list(groups)
    agg = meter.aggregation
    if agg == Meter.Aggregation.COUNT:
        aggregate: Any = Count("*")
    elif agg == Meter.Aggregation.UNIQUE_COUNT:
        aggregate = Count(_value(meter.field, numeric=False), distinct=True)
    else:
        value = _value(meter.field, numeric=True)
        if agg == Meter.Aggregation.LATEST:
            return _meter_latest(events.annotate(v=value), names)
        aggregate = Sum(value) if agg == Meter.Aggregation.SUM else Max(value)
    if names:
        rows = list(events.values(*names).annotate(q=aggregate).order_by(*names))
    else:
        rows = [events.aggregate(q=aggregate)]
    return {tuple(row[n] for n in names): _decimal(row["q"]) for row in rows}


def _decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


def _meter_latest(events: QuerySet[Event], names: list[str]) -> dict[tuple[Any, ...], Decimal]:
    latest: dict[tuple[Any, ...], Decimal] = {}
    for row in events.order_by("timestamp", "event_id").values(*names, "v"):
        latest[tuple(row[n] for n in names)] = _decimal(row["v"])
    return latest


# --- meter totals for billing ---------------------------------------------------------------


@dataclass(frozen=True)
class UsageWindow:
    """One tenant's ``[start, end)``: a billing period."""

    tenant_id: UUID
    start: datetime
    end: datetime


@dataclass
class MeterTotal:
    """A meter's aggregates over a window for one group of its group-by values."""

    events: int = 0
    sum: Decimal = Decimal(0)
    max: Decimal | None = None


MeterTotals = dict[int, dict[tuple[str, ...], MeterTotal]]  # meter id -> group -> total


def _hour_ceil(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _group_of(key: str) -> tuple[str, ...]:
    import json

    return tuple(str(v) for v in json.loads(key or "[]"))


def meter_period_totals(
    *, meters: list[Meter], windows: list[UsageWindow]
) -> dict[UsageWindow, MeterTotals]:
    """Count, sum and max of additive meters (count, sum, max) per window and group, from the
    hourly meter rollups. A window edge inside a UTC hour (a timezone with a half-hour offset)
    is read from the raw events of that part-hour, so a period gets exactly its own events.
    Unique counts and latest values are not additive: ask ``meter_quantities`` for those."""
    additive = [m for m in meters if m.aggregation in ("count", "sum", "max")]
    totals: dict[UsageWindow, MeterTotals] = {w: {m.id: {} for m in additive} for w in windows}
    if not additive or not windows:
        return totals
    by_key = {(w.tenant_id, w.start): w for w in windows}
    whole = [(w, _hour_ceil(w.start), _hour_floor(w.end)) for w in windows]
    for key, meter_id, group_key, events, total, top in _rollup_sums(
        [m.id for m in additive], [(w.tenant_id, s, e, w.start) for w, s, e in whole if s < e]
    ):
        _add(totals[by_key[key]][meter_id], _group_of(group_key), events, total, top)
    for window, start, end in whole:
        edges = [(window.start, min(start, window.end)), (max(end, window.start), window.end)]
        if start >= end:  # the window lies inside one hour
            edges = [(window.start, window.end)]
        for edge_start, edge_end in edges:
            if edge_start < edge_end:
                _edge_add(totals[window], additive, window.tenant_id, edge_start, edge_end)
    return totals


def _add(
    groups: dict[tuple[str, ...], MeterTotal],
    group: tuple[str, ...],
    events: int,
    total: Decimal | None,
    top: Decimal | None,
) -> None:
    current = groups.setdefault(group, MeterTotal())
    current.events += int(events)
    if total is not None:
        current.sum += _decimal(total)
    if top is not None:
        value = _decimal(top)
        current.max = value if current.max is None else max(current.max, value)


def _rollup_sums(
    meter_ids: list[int], spans: list[tuple[UUID, datetime, datetime, datetime]]
) -> list[tuple[tuple[UUID, datetime], int, str, int, Any, Any]]:
    """(window key, meter, group, events, sum, max) over whole hours, in one query for all
    windows: ``spans`` are (tenant, first hour, end hour, window start), joined to the rollups
    as a list."""
    from django.db import connection

    if not spans:
        return []
    pg = connection.vendor == "postgresql"
    if pg:
        windows = (
            "SELECT * FROM unnest(%s::uuid[], %s::timestamptz[], %s::timestamptz[], "
            "%s::timestamptz[]) AS w(t, s, e, k)"
        )
        params: list[Any] = [list(column) for column in zip(*spans, strict=True)]
        meters = "r.meter_id = ANY(%s)"
        meter_params: list[Any] = [meter_ids]
    else:
        adapt = connection.ops.adapt_datetimefield_value
        rows = ", ".join("SELECT %s AS t, %s AS s, %s AS e, %s AS k" for _ in spans)
        windows = rows.replace(", SELECT", " UNION ALL SELECT")
        params = [v for t, s, e, k in spans for v in (t.hex, adapt(s), adapt(e), adapt(k))]
        meters = f"r.meter_id IN ({', '.join('%s' for _ in meter_ids)})"
        meter_params = [*meter_ids]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT w.t, w.k, r.meter_id, r.group_key, SUM(r.events), SUM(r.sum), MAX(r.max) "
            f"FROM metering_meter_rollup r JOIN ({windows}) AS w ON r.tenant_id = w.t "
            f"AND r.hour >= w.s AND r.hour < w.e WHERE {meters} "
            "GROUP BY w.t, w.k, r.meter_id, r.group_key",
            [*params, *meter_params],
        )
        found = cursor.fetchall()
    if pg:
        return [((t, k), m, g, n, total, top) for t, k, m, g, n, total, top in found]
    # SQLite hands back its own text: UUIDs as hex, times as naive UTC.
    return [
        ((UUID(t), datetime.fromisoformat(k).replace(tzinfo=UTC)), m, g, n, total, top)
        for t, k, m, g, n, total, top in found
    ]


def _edge_add(
    totals: MeterTotals, meters: list[Meter], tenant_id: UUID, start: datetime, end: datetime
) -> None:
    """Add the raw events of a part-hour at a window's edge."""
    for meter in meters:
        events = _meter_events(meter, tenant_id, start, end)
        groups = {f"g{i}": _value(g, numeric=False) for i, g in enumerate(meter.group_by or [])}
        names = list(groups)
        value = _value(meter.field, numeric=True) if meter.field else None
        measures: dict[str, Any] = {"n": Count("*")}
        if value is not None:
            measures |= {"s": Sum(value), "x": Max(value)}
        rows = events.annotate(**groups).values(*names).annotate(**measures).order_by(*names)
        for row in rows:
            group = tuple("" if row[n] is None else str(row[n]) for n in names)
            _add(totals[meter.id], group, row["n"], row.get("s"), row.get("x"))


def meter_period_uniques(
    *, meter: Meter, windows: list[UsageWindow], also: dict[str, str] | None = None
) -> dict[UsageWindow, Decimal]:
    """A unique-count meter's distinct values per window, from raw events, in one query for
    all windows (with ``also``, a charge's filter, on top of the meter's own)."""
    from django.db import connection

    from apps.metering.services.meters import windows_distinct_sql

    if not windows:
        return {}
    sql, params = windows_distinct_sql(
        meter=meter, windows=[(w.tenant_id, w.start, w.end) for w in windows], also=also or {}
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    pg = connection.vendor == "postgresql"
    counts: dict[tuple[UUID, datetime], int] = {}
    for tenant, start, count in found:
        key = (
            (tenant, start)
            if pg
            else (UUID(tenant), datetime.fromisoformat(start).replace(tzinfo=UTC))
        )
        counts[key] = count
    return {w: Decimal(counts.get((w.tenant_id, w.start), 0)) for w in windows}
