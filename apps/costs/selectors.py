"""Read path for costs: the cost rollups summed over a period by any dimensions, daily
series, workflow runs, and billed revenue in the operator currency.

Cost data is the operator's own (what calls cost us), so these reads are operator-only; a
``tenant_id`` narrows them to one tenant's calls.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db.models import Max, Q, QuerySet, Sum

from apps.billing.selectors import revenue_lines
from apps.core.periods import PERIOD_YEARS, PERIOD_YEARS_TEXT, month_add
from apps.costs.errors import AnalyticsQueryInvalid
from apps.costs.models import CostDay, CostRollup, WorkflowDepth
from apps.costs.services.rollup import PriceContext

GROUPS = (
    "tenant",
    "feature",
    "workflow",
    "endpoint",
    "team",
    "service",
    "environment",
    "provider",
    "model",
)
_COLUMN = {"tenant": "tenant_id"}
ZERO = Decimal(0)


@dataclass(frozen=True)
class CostPeriod:
    """A half-open range of UTC days ``[start, end)``; months by default."""

    start: date
    end: date

    @property
    def label(self) -> str:
        return self.start.strftime("%Y-%m") if self.is_month else f"{self.start}..{self.end}"

    @property
    def is_month(self) -> bool:
        return self.start.day == 1 and self.end == _month_after(self.start)

    def previous(self) -> "CostPeriod":
        if self.is_month:
            return CostPeriod(_month_before(self.start), self.start)
        return CostPeriod(self.start - (self.end - self.start), self.start)

    def start_at(self) -> datetime:
        return datetime.combine(self.start, time(), tzinfo=UTC)

    def end_at(self) -> datetime:
        return datetime.combine(self.end, time(), tzinfo=UTC)

    def days(self) -> list[date]:
        return [date.fromordinal(o) for o in range(self.start.toordinal(), self.end.toordinal())]


def _month_after(day: date) -> date:
    return month_add(day, 1)


def _month_before(day: date) -> date:
    return month_add(day, -1)


def cost_period_parse(text: str | None) -> CostPeriod:
    """``2026-10`` (a UTC month) or ``2026-10-05..2026-10-12`` (days, end exclusive)."""
    if not text:
        raise AnalyticsQueryInvalid("period: required, as YYYY-MM", field="period")
    try:
        if ".." in text:
            first, last = text.split("..", 1)
            period = CostPeriod(date.fromisoformat(first), date.fromisoformat(last))
        else:
            if len(text) != 7 or text[4] != "-":
                raise ValueError(text)
            start = date(int(text[:4]), int(text[5:]), 1)
            period = CostPeriod(start, _month_after(start))
    except ValueError as exc:
        raise AnalyticsQueryInvalid(
            f"period: {text!r} is not YYYY-MM or YYYY-MM-DD..YYYY-MM-DD", field="period"
        ) from exc
    if period.start.year not in PERIOD_YEARS or period.end.year not in PERIOD_YEARS:
        raise AnalyticsQueryInvalid(
            f"period: {text!r} is out of range ({PERIOD_YEARS_TEXT})",
            field="period",
        )
    if period.end <= period.start or (period.end - period.start).days > 366:
        raise AnalyticsQueryInvalid(
            f"period: {text!r} must end after it starts, within 366 days", field="period"
        )
    return period


def group_by_parse(text: str | None, *, allowed: tuple[str, ...] = GROUPS) -> tuple[str, ...]:
    """The dimensions of ``group_by`` text, each from ``allowed`` (the only names that reach
    the query as columns), at most ``PERCALL_ANALYTICS_MAX_DIMENSIONS`` of them."""
    names = tuple(part.strip() for part in (text or "").split(",") if part.strip())
    most = settings.PERCALL_ANALYTICS_MAX_DIMENSIONS
    if len(names) > most:
        raise AnalyticsQueryInvalid(
            f"group_by: {len(names)} dimensions; at most {most} at once", field="group_by"
        )
    for name in names:
        if name not in allowed:
            raise AnalyticsQueryInvalid(
                f"group_by: {name!r} is not one of {', '.join(allowed)}", field="group_by"
            )
    if len(set(names)) != len(names):
        raise AnalyticsQueryInvalid("group_by: a dimension appears twice", field="group_by")
    return names


_SUMS: dict[str, Any] = {
    "calls": Sum("events"),
    "cost": Sum("cost"),
    "avoided_cost": Sum("avoided_cost"),
    "retries": Sum("retries"),
    "errors": Sum("errors"),
    "traced_calls": Sum("traced_calls"),
    "root_calls": Sum("root_calls"),
    "input_tokens": Sum("input_tokens"),
    "output_tokens": Sum("output_tokens"),
    "cache_read_tokens": Sum("cache_read_tokens"),
    "cache_write_tokens": Sum("cache_write_tokens"),
    "reasoning_tokens": Sum("reasoning_tokens"),
    "wasted_calls": Sum("events", filter=Q(wasted=True)),
    "wasted_cost": Sum("cost", filter=Q(wasted=True)),
    "hit_calls": Sum("events", filter=Q(cache_hit=True)),
    "external_calls": Sum("events", filter=Q(external=True)),
    "external_cost": Sum("cost", filter=Q(external=True)),
    "llm_calls": Sum("events", filter=~Q(model="")),
    "workflow_calls": Sum("events", filter=~Q(workflow="")),
    "workflow_cost": Sum("cost", filter=~Q(workflow="")),
    "workflow_runs": Sum("root_calls", filter=~Q(workflow="")),
    "event_costed_calls": Sum("events", filter=Q(source=CostRollup.Source.EVENT)),
    "price_book_calls": Sum("events", filter=Q(source=CostRollup.Source.PRICE_BOOK)),
    "uncosted_calls": Sum("events", filter=Q(source=CostRollup.Source.NONE)),
}
# Annotations may not reuse a field's name ("cost"): they run as sum_<name>.
SUM_NAMES = tuple(_SUMS)


def _rows(period: CostPeriod, tenant_id: UUID | None) -> QuerySet[CostRollup]:
    rows = CostRollup.objects.filter(day__gte=period.start, day__lt=period.end)
    return rows if tenant_id is None else rows.filter(tenant_id=tenant_id)


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SUM_NAMES:
        value = values.get(f"sum_{name}")
        if name in ("cost", "avoided_cost", "wasted_cost", "external_cost", "workflow_cost"):
            out[name] = Decimal(value) if value is not None else ZERO
        else:
            out[name] = int(value or 0)
    return out


GroupKey = tuple[str, ...]


def analytics_max_groups() -> int:
    """The most groups an analytics answer may have (``PERCALL_ANALYTICS_MAX_GROUPS``)."""
    return int(settings.PERCALL_ANALYTICS_MAX_GROUPS)


def _groups_check(count: int, most: int | None) -> None:
    """Refuse an answer of more than ``most`` groups rather than truncate it: a silently
    partial breakdown would read as a complete one. None: no cap (internal readers, such as
    the leakage scan or the forecasts, which need every tenant)."""
    if most is not None and count > most:
        raise AnalyticsQueryInvalid(
            f"group_by: more than {most} groups in this period; group by fewer dimensions, "
            "filter by tenant or ask for a shorter period",
            field="group_by",
        )


def cost_totals(
    *,
    period: CostPeriod,
    group_by: tuple[str, ...],
    tenant_id: UUID | None = None,
    sums: tuple[str, ...] | None = None,
    max_groups: int | None = None,
) -> dict[GroupKey, dict[str, Any]]:
    """The sums of ``_SUMS`` (``sums`` of them; all by default, ``calls`` always) per group of
    ``group_by`` over the period, in one query; sums not asked for read as 0."""
    wanted = SUM_NAMES if sums is None else ("calls", *(n for n in sums if n != "calls"))
    aggregates = {f"sum_{name}": _SUMS[name] for name in wanted}
    columns = [_COLUMN.get(g, g) for g in group_by]
    if not columns:
        totals = _rows(period, tenant_id).aggregate(**aggregates)
        return {(): _clean(totals)} if totals["sum_calls"] else {}
    grouped = _rows(period, tenant_id).values(*columns).annotate(**aggregates).order_by(*columns)
    # One group past the cap is enough to know it is over: the database sends no more.
    rows = list(grouped if max_groups is None else grouped[: max_groups + 1])
    _groups_check(len(rows), max_groups)
    return {tuple(str(row[c]) for c in columns): _clean(row) for row in rows}


def cost_daily(
    *,
    period: CostPeriod,
    group_by: tuple[str, ...],
    tenant_id: UUID | None = None,
    max_groups: int | None = None,
) -> dict[GroupKey, dict[date, tuple[int, Decimal]]]:
    """(calls, cost) per day of the period, per group; at most ``max_groups`` groups."""
    columns = [_COLUMN.get(g, g) for g in group_by]
    rows = (
        _rows(period, tenant_id)
        .values(*columns, "day")
        .annotate(sum_calls=Sum("events"), sum_cost=Sum("cost"))
        .order_by(*columns, "day")
    )
    out: dict[GroupKey, dict[date, tuple[int, Decimal]]] = {}
    # Rows come ordered by group, so reading stops at the first group past the cap.
    for row in rows.iterator(chunk_size=2000):
        key = tuple(str(row[c]) for c in columns)
        if key not in out:
            _groups_check(len(out) + 1, max_groups)
        out.setdefault(key, {})[row["day"]] = (int(row["sum_calls"]), Decimal(row["sum_cost"]))
    return out


def workflow_runs(
    *,
    period: CostPeriod,
    group_by: tuple[str, ...],
    tenant_id: UUID | None = None,
    max_groups: int | None = None,
) -> dict[GroupKey, dict[str, Any]]:
    """Runs, calls and the deepest chain of the workflow runs begun in the period."""
    columns = [_COLUMN.get(g, g) for g in group_by]
    rows = WorkflowDepth.objects.filter(day__gte=period.start, day__lt=period.end)
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    sums = {"sum_runs": Sum("runs"), "sum_calls": Sum("calls"), "top_depth": Max("max_depth")}
    if not columns:
        total = rows.aggregate(**sums)
        grouped: Any = [total] if total["sum_runs"] else []
    else:
        ordered = rows.values(*columns).annotate(**sums).order_by(*columns)
        grouped = list(ordered if max_groups is None else ordered[: max_groups + 1])
        _groups_check(len(grouped), max_groups)
    return {
        tuple(str(r[c]) for c in columns): {
            "runs": int(r["sum_runs"]),
            "calls": int(r["sum_calls"]),
            "max_depth": int(r["top_depth"]),
        }
        for r in grouped
    }


def revenue_totals(
    *, period: CostPeriod, group_by: tuple[str, ...], tenant_id: UUID | None = None
) -> tuple[dict[GroupKey, Decimal], list[str]]:
    """Billed revenue per group (``tenant`` and/or ``feature``) in the operator currency,
    converted at the FX rate of the period's last day; returns the totals and the currencies
    that had no rate (their revenue is left out, and said so)."""
    prices = PriceContext()
    last_day = date.fromordinal(period.end.toordinal() - 1)
    totals: dict[GroupKey, Decimal] = {}
    missing: set[str] = set()
    for line in revenue_lines(start=period.start_at(), end=period.end_at(), tenant_id=tenant_id):
        rate = prices.fx(line.currency, last_day)
        if rate is None:
            missing.add(line.currency)
            continue
        values = {"tenant": str(line.tenant_id), "feature": line.feature}
        key = tuple(values[g] for g in group_by)
        totals[key] = totals.get(key, ZERO) + line.amount * rate
    return totals, sorted(missing)


CHARGEBACK_GRAIN = ("day", "team", "endpoint", "feature", "service", "provider", "model")
MAPPED_DIMENSIONS = ("team", "endpoint", "feature", "service")


def cost_center_totals(*, period: CostPeriod) -> list[dict[str, Any]]:
    """The period's calls, tokens and exact cost by the dimensions cost centers are mapped by."""
    return _chargeback_rows(period, MAPPED_DIMENSIONS)


def cost_rows_for_chargeback(*, period: CostPeriod) -> list[dict[str, Any]]:
    """The period's cost by day and by every dimension a cost center is mapped or reported
    by: calls, uncosted calls, tokens and exact cost."""
    return _chargeback_rows(period, CHARGEBACK_GRAIN)


def _chargeback_rows(period: CostPeriod, grain: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = (
        _rows(period, None)
        .values(*grain)
        .annotate(
            sum_calls=Sum("events"),
            sum_uncosted=Sum("events", filter=Q(source=CostRollup.Source.NONE)),
            sum_input=Sum("input_tokens"),
            sum_output=Sum("output_tokens"),
            sum_cost=Sum("cost"),
        )
        .order_by(*grain)
    )
    return [
        {
            **{g: row[g] for g in grain},
            "calls": int(row["sum_calls"]),
            "uncosted_calls": int(row["sum_uncosted"] or 0),
            "input_tokens": int(row["sum_input"] or 0),
            "output_tokens": int(row["sum_output"] or 0),
            "cost": Decimal(row["sum_cost"]),
        }
        for row in rows
    ]


def price_book_version_ids(*, period: CostPeriod) -> set[int]:
    """The price-book versions that priced any cost of the period."""
    ids = (
        _rows(period, None)
        .exclude(price_book_version_id=None)
        .values_list("price_book_version_id", flat=True)
        .distinct()
    )
    return {i for i in ids if i is not None}


def prices_changed(*, period: CostPeriod) -> bool:
    """Whether any costed day of the period is due to be costed again for new prices (its
    price key no longer matches the price book and FX rates)."""
    days = CostDay.objects.filter(day__gte=period.start, day__lt=period.end)
    prices = PriceContext()
    return any(
        key != prices.key(day) for day, key in days.values_list("day", "prices_key").distinct()
    )
