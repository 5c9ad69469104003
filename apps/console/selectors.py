"""Read path for the API-program dashboard: adoption, call volume, endpoint popularity, revenue
and the program's cost against its revenue, for one UTC month.

Every read is set-based (one grouped query per figure, never one per tenant), so the page costs
the same number of queries with 3 partners or 3,000. Usage and cost come from the daily cost
rollups (the hourly usage rollups summed by UTC day, with each call's cost), revenue from
invoice lines; the console is operator-wide, so these
reads are not tenant-scoped.
"""

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db.models import Count, Sum
from django.db.models.functions import TruncMonth

from apps.billing.models import Invoice, InvoiceLine
from apps.core.periods import month_add
from apps.costs.models import CostRollup
from apps.costs.selectors import CostPeriod, cost_totals
from apps.costs.services.rollup import PriceContext
from apps.tenants.models import Tenant

ZERO = Decimal(0)
DAY_SECONDS = Decimal(86400)
GROWTH_MONTHS = 6  # months of partner growth shown, ending with the chosen one
TOP_PARTNERS = 5  # partners drawn one by one in the volume chart; the rest are "Other"
TOP_ENDPOINTS = 15


@dataclass(frozen=True)
class Partner:
    id: UUID
    external_id: str
    name: str
    registered_at: datetime
    first_call_at: datetime | None


def partners_registered(*, before: datetime) -> dict[UUID, Partner]:
    """Every tenant registered before ``before``, by id, in one query."""
    rows = Tenant.objects.filter(registered_at__lt=before).order_by("external_id")
    return {
        t.id: Partner(t.id, t.external_id, t.name, t.registered_at, t.first_call_at)
        for t in rows.only("id", "external_id", "name", "registered_at", "first_call_at")
    }


def _start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def growth_pct(current: int | Decimal, previous: int | Decimal) -> Decimal | None:
    """Month-over-month change in percent, to one decimal; None from nothing."""
    if not previous:
        return None
    return ((Decimal(current) - Decimal(previous)) * 100 / Decimal(previous)).quantize(
        Decimal("0.1")
    )


def days_between(start: datetime, end: datetime) -> Decimal:
    """Days from ``start`` to ``end`` to one decimal; 0 where a backfilled first call predates
    the registration."""
    seconds = max(Decimal(0), Decimal((end - start).total_seconds()))
    return (seconds / DAY_SECONDS).quantize(Decimal("0.1"))


@dataclass
class Adoption:
    registered: int
    active: int
    previous_registered: int
    previous_active: int
    registered_growth_pct: Decimal | None
    active_growth_pct: Decimal | None
    median_days_to_first_call: Decimal | None
    never_called: int
    # (partner, days to first call or None, successful calls in the month)
    partners: list[tuple[Partner, Decimal | None, int]]
    months: list[tuple[str, int, int]]  # (YYYY-MM, registered by its end, active in it)


def _successful_calls_by_month(first: date, end: date) -> dict[tuple[date, UUID], int]:
    """Calls that did not fail (status < 400) per (UTC month, tenant)."""
    rows = (
        CostRollup.objects.filter(day__gte=first, day__lt=end)
        .annotate(month=TruncMonth("day"))
        .values("month", "tenant_id")
        .annotate(calls=Sum("events"), errors=Sum("errors"))
        .order_by()
    )
    out: dict[tuple[date, UUID], int] = {}
    for row in rows:
        ok = int(row["calls"] or 0) - int(row["errors"] or 0)
        if ok > 0:
            month = row["month"]
            out[(month.date() if isinstance(month, datetime) else month, row["tenant_id"])] = ok
    return out


def program_adoption(*, period: CostPeriod) -> Adoption:
    """Registered and active partners (active: at least one successful call in the month),
    their month-over-month growth over ``GROWTH_MONTHS`` months, and the time from
    registration to first call, per partner and as a median."""
    first = month_add(period.start, -(GROWTH_MONTHS - 1))
    partners = partners_registered(before=period.end_at())
    ok = _successful_calls_by_month(first, period.end)
    months = []
    for index in range(GROWTH_MONTHS):
        start = month_add(first, index)
        end_at = _start(month_add(start, 1))
        registered = sum(1 for p in partners.values() if p.registered_at < end_at)
        active = sum(1 for (m, _tenant) in ok if m == start)
        months.append((f"{start:%Y-%m}", registered, active))
    _, registered, active = months[-1]
    _, previous_registered, previous_active = months[-2]
    rows = []
    for partner in partners.values():
        days = (
            days_between(partner.registered_at, partner.first_call_at)
            if partner.first_call_at is not None
            else None
        )
        rows.append((partner, days, ok.get((period.start, partner.id), 0)))
    waits = [days for _, days, _ in rows if days is not None]
    return Adoption(
        registered=registered,
        active=active,
        previous_registered=previous_registered,
        previous_active=previous_active,
        registered_growth_pct=growth_pct(registered, previous_registered),
        active_growth_pct=growth_pct(active, previous_active),
        median_days_to_first_call=statistics.median(waits) if waits else None,
        never_called=sum(1 for _, days, _ in rows if days is None),
        partners=rows,
        months=months,
    )


@dataclass(frozen=True)
class Volume:
    days: list[str]  # YYYY-MM-DD
    series: list[tuple[str, list[int]]]  # (label, calls per day), top partners then "Other"
    totals: list[tuple[str, int]]  # (partner external id, calls in the month), most first


def call_volume(*, period: CostPeriod, names: dict[UUID, str]) -> Volume:
    """API calls per UTC day by partner over the month: the ``TOP_PARTNERS`` busiest partners
    one by one and everyone else as "Other partners"."""
    rows = (
        CostRollup.objects.filter(day__gte=period.start, day__lt=period.end)
        .values("day", "tenant_id")
        .annotate(calls=Sum("events"))
        .order_by()
    )
    days = [d.isoformat() for d in period.days()]
    per: dict[UUID, list[int]] = defaultdict(lambda: [0] * len(days))
    for row in rows:
        per[row["tenant_id"]][(row["day"] - period.start).days] += int(row["calls"])
    ranked = sorted(per, key=lambda t: (-sum(per[t]), names.get(t, str(t))))
    series = [(names.get(t, str(t)), per[t]) for t in ranked[:TOP_PARTNERS]]
    rest = ranked[TOP_PARTNERS:]
    if rest:
        series.append(("Other partners", [sum(per[t][i] for t in rest) for i in range(len(days))]))
    totals = [(names.get(t, str(t)), sum(per[t])) for t in ranked]
    return Volume(days, series, totals)


def endpoint_popularity(*, period: CostPeriod) -> list[dict[str, Any]]:
    """The month's busiest endpoints: calls, failed calls and how many partners call each."""
    rows = (
        CostRollup.objects.filter(day__gte=period.start, day__lt=period.end)
        .values("endpoint")
        .annotate(
            calls=Sum("events"), errors=Sum("errors"), partners=Count("tenant_id", distinct=True)
        )
        .order_by("-calls", "endpoint")[:TOP_ENDPOINTS]
    )
    return [
        {
            "endpoint": row["endpoint"] or "(no endpoint)",
            "calls": int(row["calls"]),
            "errors": int(row["errors"]),
            "partners": int(row["partners"]),
        }
        for row in rows
    ]


@dataclass
class Revenue:
    """Billed revenue (invoice lines before credits and tax, drafts included, void invoices
    not) of the subscription periods that begin in the month in each tenant's own timezone."""

    by_partner: dict[tuple[UUID, str], Decimal] = field(default_factory=dict)
    by_plan: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    by_meter: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    by_currency: dict[str, Decimal] = field(default_factory=dict)
    drafts: int = 0  # invoices of the month still in draft (their amounts may move)
    operator_amount: Decimal = ZERO  # all of it in the operator currency
    missing_fx: list[str] = field(default_factory=list)


_LINE_LABELS = {
    InvoiceLine.Kind.BASE_FEE: "base fee",
    InvoiceLine.Kind.MINIMUM: "minimum commitment",
    InvoiceLine.Kind.ADJUSTMENT: "adjustment",
}


def _add(totals: dict, key: tuple, amount: Decimal) -> None:
    totals[key] = totals.get(key, ZERO) + amount


def program_revenue(*, period: CostPeriod) -> Revenue:
    """The month's revenue per partner, per plan and per meter in each invoice's currency,
    and in total in the operator currency at the FX rate of the month's last day."""
    # A tenant's local month starts within a day of the UTC one.
    window = (period.start_at() - timedelta(days=1), period.end_at() + timedelta(days=1))
    invoices = Invoice.objects.filter(
        kind=Invoice.Kind.SUBSCRIPTION, period_start__range=window
    ).exclude(status=Invoice.Status.VOID)
    rows = (
        InvoiceLine.objects.filter(invoice__in=invoices)
        .values_list(
            "invoice__tenant_id",
            "invoice__tenant__timezone",
            "invoice__currency",
            "invoice__period_start",
            "invoice__plan__name",
            "meter_code",
            "kind",
        )
        .annotate(total=Sum("amount"))
        .order_by()
    )
    revenue = Revenue()
    zones: dict[str, ZoneInfo] = {}
    in_month: set[tuple[UUID, datetime]] = set()
    for tenant, zone_name, currency, began, plan, meter, kind, total in rows:
        zone = zones.setdefault(zone_name, ZoneInfo(zone_name))
        if not period.start <= began.astimezone(zone).date() < period.end:
            continue
        in_month.add((tenant, began))
        _add(revenue.by_partner, (tenant, currency), total)
        _add(revenue.by_plan, (plan or "(no plan)", currency), total)
        _add(revenue.by_meter, (meter or _LINE_LABELS.get(kind, kind), currency), total)
        revenue.by_currency[currency] = revenue.by_currency.get(currency, ZERO) + total
    drafts = invoices.filter(status=Invoice.Status.DRAFT).values_list("tenant_id", "period_start")
    revenue.drafts = sum(1 for pair in drafts if pair in in_month)
    prices = PriceContext()
    last_day = period.end - timedelta(days=1)
    for currency, amount in revenue.by_currency.items():
        rate = prices.fx(currency, last_day)
        if rate is None:
            revenue.missing_fx.append(currency)
        else:
            revenue.operator_amount += amount * rate
    return revenue


@dataclass(frozen=True)
class ProgramMath:
    """The program's direct cost against its revenue, in the operator currency."""

    currency: str
    calls: int
    cost: Decimal
    revenue: Decimal
    margin: Decimal
    margin_pct: Decimal | None
    cost_per_1000_calls: Decimal | None
    revenue_per_1000_calls: Decimal | None


def _per_thousand(amount: Decimal, calls: int) -> Decimal | None:
    return (amount * 1000 / calls).quantize(Decimal("0.0001")) if calls else None


def program_math(*, period: CostPeriod, revenue: Revenue, currency: str) -> ProgramMath:
    """Direct cost of every call of the month (cost rollups) against its billed revenue."""
    totals = cost_totals(period=period, group_by=(), sums=("cost",)).get((), {})
    calls, cost = int(totals.get("calls", 0)), Decimal(totals.get("cost", ZERO))
    margin = revenue.operator_amount - cost
    pct = (
        (margin * 100 / revenue.operator_amount).quantize(Decimal("0.1"))
        if revenue.operator_amount
        else None
    )
    return ProgramMath(
        currency=currency,
        calls=calls,
        cost=cost,
        revenue=revenue.operator_amount,
        margin=margin,
        margin_pct=pct,
        cost_per_1000_calls=_per_thousand(cost, calls),
        revenue_per_1000_calls=_per_thousand(revenue.operator_amount, calls),
    )
