"""What a leakage scan of one calendar month looks at, loaded in a few queries for all tenants.

A month ``YYYY-MM`` is read the way billing reads a tenant's periods: from local midnight of
the first day to local midnight of the next month's first day in the tenant's timezone. Cost
figures come from the cost rollups, which are kept by UTC day, so they use the UTC month (as
chargeback and the cost metrics do).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Prefetch, Q, Sum

from apps.billing.models import Invoice, InvoiceLine, PlanChange, Subscription
from apps.billing.services.pricing import NoRateCardVersion, version_at
from apps.billing.services.subscriptions import plan_at
from apps.catalog.models import Charge, RateCardVersion
from apps.catalog.selectors import rate_card_versions
from apps.core.periods import BillingPeriod, local_midnight, month_add
from apps.costs.models import CostRollup
from apps.costs.selectors import CostPeriod
from apps.tenants.models import Tenant

ZERO = Decimal(0)
SAMPLE_SIZE = 20  # event ids kept as evidence per finding


@dataclass(frozen=True)
class Detected:
    """One finding as a detector sees it, before it is matched to a stored row."""

    category: str
    tenant_id: UUID
    subject: str
    quantity: Decimal
    unit: str
    amount: Decimal
    currency: str
    basis: str
    evidence: dict[str, Any]

    @property
    def key(self) -> tuple[str, UUID, str]:
        return (self.category, self.tenant_id, self.subject)


@dataclass
class TenantMonth:
    """One tenant's month: its local window, the subscriptions overlapping it, the rate-card
    version that prices it, and its subscription invoices (not void) whose periods start in it."""

    tenant: Tenant
    window: BillingPeriod
    subscriptions: list[Subscription] = field(default_factory=list)
    version: RateCardVersion | None = None
    invoices: list[Invoice] = field(default_factory=list)

    def uncovered(self) -> list[BillingPeriod]:
        """The parts of the window no subscription was active in, oldest first."""
        spans = sorted(
            (
                max(s.started_at, self.window.start),
                min(s.ends_at or self.window.end, self.window.end),
            )
            for s in self.subscriptions
        )
        gaps, cursor = [], self.window.start
        for start, end in spans:
            if start > cursor:
                gaps.append(BillingPeriod(cursor, start))
            cursor = max(cursor, end)
        if cursor < self.window.end:
            gaps.append(BillingPeriod(cursor, self.window.end))
        return gaps


@dataclass
class ScanScope:
    month: date  # the first day
    months: dict[UUID, TenantMonth]
    operator_currency: str

    @property
    def cost_period(self) -> CostPeriod:
        return CostPeriod(self.month, month_add(self.month, 1))

    def by_window(self) -> dict[BillingPeriod, list[UUID]]:
        """Tenant ids by their window: tenants of one timezone share one, so a detector runs
        one query per timezone in use, never one per tenant."""
        groups: dict[BillingPeriod, list[UUID]] = defaultdict(list)
        for tenant_id, month in self.months.items():
            groups[month.window].append(tenant_id)
        return groups


def month_window(month: date, timezone_name: str) -> BillingPeriod:
    zone = ZoneInfo(timezone_name)
    return BillingPeriod(local_midnight(month, zone), local_midnight(month_add(month, 1), zone))


def scan_scope(*, month: date, tenant_ids: list[UUID] | None = None) -> ScanScope:
    """Every tenant (or those given) with its month, subscriptions, rate-card version and
    invoices, in one query per kind of row."""
    tenants = Tenant.objects.order_by("external_id")
    if tenant_ids is not None:
        tenants = tenants.filter(id__in=tenant_ids)
    months = {t.id: TenantMonth(t, month_window(month, t.timezone)) for t in tenants}
    _subscriptions_load(months, month)
    _invoices_load(months, month)
    _versions_choose(months)
    return ScanScope(month, months, settings.PERCALL_OPERATOR_CURRENCY)


def _near(month: date) -> tuple[datetime, datetime]:
    """The UTC span every tenant's month lies in: local midnights are within a day of UTC."""
    start = month_window(month, "UTC")
    return start.start - timedelta(days=1), start.end + timedelta(days=1)


def _subscriptions_load(months: dict[UUID, TenantMonth], month: date) -> None:
    low, high = _near(month)
    rows = (
        Subscription.objects.filter(tenant_id__in=list(months), started_at__lt=high)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=low))
        .select_related("plan")
        .prefetch_related(
            Prefetch("plan_changes", queryset=PlanChange.objects.select_related("plan"))
        )
        .order_by("started_at")
    )
    for subscription in rows:
        tm = months[subscription.tenant_id]
        ends = subscription.ends_at
        if subscription.started_at < tm.window.end and (ends is None or ends > tm.window.start):
            tm.subscriptions.append(subscription)


def _invoices_load(months: dict[UUID, TenantMonth], month: date) -> None:
    low, high = _near(month)
    charges = Charge.objects.select_related("meter").order_by("position")
    rows = (
        Invoice.objects.filter(
            tenant_id__in=list(months),
            kind=Invoice.Kind.SUBSCRIPTION,
            period_start__gte=low,
            period_start__lt=high,
        )
        .select_related("plan", "rate_card_version__rate_card", "subscription")
        .prefetch_related(
            Prefetch("lines", queryset=InvoiceLine.objects.select_related("charge")),
            Prefetch("rate_card_version__charges", queryset=charges),
        )
        .order_by("period_start")
    )
    for invoice in rows:
        tm = months[invoice.tenant_id]
        if tm.window.start <= invoice.period_start < tm.window.end:
            tm.invoices.append(invoice)


def _versions_choose(months: dict[UUID, TenantMonth]) -> None:
    """The version an invoice of the month was priced with; without one, the version the
    latest subscription's plan had in effect at the month's start (or its own start)."""
    cards = {
        change.plan.rate_card_id
        for tm in months.values()
        for s in tm.subscriptions
        for change in s.plan_changes.all()
    } | {s.plan.rate_card_id for tm in months.values() for s in tm.subscriptions}
    by_card: dict[Any, list[RateCardVersion]] = defaultdict(list)
    for version in rate_card_versions(rate_card_ids=list(cards)):
        by_card[version.rate_card_id].append(version)
    for tm in months.values():
        priced = [i for i in tm.invoices if i.status != Invoice.Status.VOID and i.rate_card_version]
        if priced:
            tm.version = priced[-1].rate_card_version
            continue
        if not tm.subscriptions:
            continue
        subscription = tm.subscriptions[-1]
        at = max(subscription.started_at, tm.window.start)
        plan = plan_at(subscription, list(subscription.plan_changes.all()), at)
        try:
            tm.version = version_at(by_card.get(plan.rate_card_id, []), at)
        except NoRateCardVersion:
            tm.version = None


def live_invoices(tm: TenantMonth) -> list[Invoice]:
    return [i for i in tm.invoices if i.status != Invoice.Status.VOID]


def cost_by_type(scope: ScanScope) -> dict[tuple[UUID, str], tuple[int, Decimal]]:
    """(calls, cost) of each tenant's event type in the UTC month, operator currency."""
    period = scope.cost_period
    rows = (
        CostRollup.objects.filter(
            day__gte=period.start, day__lt=period.end, tenant_id__in=list(scope.months)
        )
        .values("tenant_id", "event_type")
        .annotate(calls=Sum("events"), total=Sum("cost"))
        .order_by()
    )
    return {
        (r["tenant_id"], r["event_type"]): (int(r["calls"] or 0), Decimal(r["total"] or 0))
        for r in rows
    }


def cost_share(
    costs: dict[tuple[UUID, str], tuple[int, Decimal]], tenant_id: UUID, types: list[str], n: int
) -> Decimal:
    """What ``n`` of the tenant's calls of ``types`` cost, at their average cost per call in
    the month (exact when the ``n`` calls are all of them)."""
    calls = sum(costs.get((tenant_id, t), (0, ZERO))[0] for t in types)
    cost = sum((costs.get((tenant_id, t), (0, ZERO))[1] for t in types), ZERO)
    if not calls:
        return ZERO
    return cost if n >= calls else cost * n / calls
