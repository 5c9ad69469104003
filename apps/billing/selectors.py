"""Read path for billing. Every read takes the caller's tenant scope: ``scope_tenant_id`` None is
the operator; any other value restricts reads to that tenant, and a foreign id reads as not
found."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db.models import (
    BooleanField,
    Case,
    CharField,
    ExpressionWrapper,
    Prefetch,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from apps.billing.errors import InvoiceNotFound, SubscriptionNotFound
from apps.billing.models import (
    CreditDebit,
    CreditGrant,
    Invoice,
    InvoiceLine,
    PlanChange,
    Subscription,
)
from apps.billing.services.credits import credits_available
from apps.billing.services.pricing import PeriodBill, bill_price, period_bill
from apps.billing.services.usage import charges_usage
from apps.catalog.selectors import rate_card_versions
from apps.core.periods import BillingPeriod, calendar_period
from apps.metering.models import Meter
from apps.rating.invoices import PricedInvoice


def _scoped(rows: QuerySet, scope_tenant_id: UUID | None) -> QuerySet:
    return rows if scope_tenant_id is None else rows.filter(tenant_id=scope_tenant_id)


def invoice_list(
    *,
    scope_tenant_id: UUID | None,
    tenant_id: UUID | None = None,
    status: str | None = None,
    period_start: datetime | None = None,
) -> QuerySet[Invoice]:
    """Invoices newest period first, optionally of one tenant, status, period start."""
    rows = _scoped(Invoice.objects.select_related("tenant"), scope_tenant_id)
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    if status:
        rows = rows.filter(status=status)
    if period_start is not None:
        rows = rows.filter(period_start=period_start)
    return rows.order_by("-period_start", "tenant__external_id", "-created_at")


def invoice_get(*, invoice_id: UUID, scope_tenant_id: UUID | None) -> Invoice:
    rows = _scoped(
        Invoice.objects.select_related("tenant", "subscription", "plan").prefetch_related(
            Prefetch("lines", queryset=InvoiceLine.objects.order_by("position")),
            "credit_notes",
        ),
        scope_tenant_id,
    )
    invoice = rows.filter(id=invoice_id).first()
    if invoice is None:
        raise InvoiceNotFound(f"invoice {invoice_id} not found")
    return invoice


def subscription_get(*, subscription_id: UUID, scope_tenant_id: UUID | None) -> Subscription:
    rows = _scoped(Subscription.objects.select_related("tenant", "plan"), scope_tenant_id)
    subscription = rows.filter(id=subscription_id).first()
    if subscription is None:
        raise SubscriptionNotFound(f"subscription {subscription_id} not found")
    return subscription


def subscription_list(*, scope_tenant_id: UUID | None, tenant_id: UUID | None = None) -> QuerySet:
    rows = _scoped(Subscription.objects.select_related("tenant", "plan"), scope_tenant_id)
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    return rows.order_by("tenant__external_id", "started_at")


@dataclass(frozen=True)
class GrantView:
    grant: CreditGrant
    consumed: Decimal
    usable: bool
    debits: list[CreditDebit]


@dataclass(frozen=True)
class CreditsView:
    currency: str
    balance: Decimal  # usable now
    grants: list[GrantView]


def tenant_credits(*, tenant_id: UUID, currency: str, at: datetime | None = None) -> CreditsView:
    """The tenant's grants, what each has paid, and the balance usable at ``at`` (now)."""
    at = at or timezone.now()
    grants = list(
        CreditGrant.objects.filter(tenant_id=tenant_id)
        .prefetch_related(
            Prefetch("debits", queryset=CreditDebit.objects.select_related("invoice"))
        )
        .order_by("effective_at", "created_at")
    )
    views = []
    for grant in grants:
        debits = list(grant.debits.all())
        views.append(
            GrantView(
                grant=grant,
                consumed=grant.amount - grant.remaining_amount,
                usable=grant.currency == currency
                and grant.remaining_amount > 0
                and grant.effective_at <= at
                and (grant.expires_at is None or grant.expires_at > at),
                debits=debits,
            )
        )
    balance = sum((v.grant.remaining_amount for v in views if v.usable), Decimal(0))
    return CreditsView(currency=currency, balance=balance, grants=views)


@dataclass(frozen=True)
class Preview:
    period: BillingPeriod
    bill: PeriodBill
    priced: PricedInvoice


def invoice_preview(*, tenant_id: UUID, at: datetime | None = None) -> Preview | None:
    """The upcoming invoice of the tenant's open subscription for the period containing
    ``at`` (now), priced from usage so far with today's credits; nothing is stored. None
    without a subscription in that period."""
    at = at or timezone.now()
    subscription = (
        Subscription.objects.filter(tenant_id=tenant_id, started_at__lte=at)
        .exclude(ends_at__lte=at)
        .select_related("tenant", "plan")
        .order_by("-started_at")
        .first()
    )
    if subscription is None:
        return None
    changes = list(PlanChange.objects.filter(subscription=subscription).select_related("plan"))
    calendar = calendar_period(
        at, timezone_name=subscription.tenant.timezone, interval=subscription.plan.interval
    )
    end = calendar.end if subscription.ends_at is None else min(calendar.end, subscription.ends_at)
    period = BillingPeriod(max(calendar.start, subscription.started_at), end)
    versions: dict[Any, list] = {}
    cards = {subscription.plan.rate_card_id, *(c.plan.rate_card_id for c in changes)}
    for version in rate_card_versions(rate_card_ids=list(cards)):
        versions.setdefault(version.rate_card_id, []).append(version)
    bill = period_bill(subscription=subscription, period=period, changes=changes, versions=versions)
    usage = charges_usage(windows={bill.window: bill.charges})[bill.window]
    grants = list(CreditGrant.objects.filter(tenant_id=tenant_id, remaining_amount__gt=0))
    available = credits_available(grants, currency=bill.plan.currency, at=period.end)
    return Preview(period, bill, bill_price(bill, usage, credits_available=available))


def invoice_totals_noted(*, invoice: Invoice) -> Decimal:
    return invoice.credit_notes.aggregate(n=Sum("amount"))["n"] or Decimal(0)


@dataclass(frozen=True)
class RevenueLine:
    """Billed revenue (before credits and tax) of a tenant's invoice lines attributed to one
    feature: a line's ``feature`` group, else the feature its meter filters on, else ''
    (base fees, commitments, usage of no one feature)."""

    tenant_id: UUID
    currency: str
    feature: str
    amount: Decimal
    source: str  # "invoice" or "preview"


def _meter_features() -> dict[str, str]:
    return {
        m.code: str(m.filters["feature"])
        for m in Meter.objects.all()
        if isinstance(m.filters, dict) and "feature" in m.filters
    }


def revenue_lines(
    *, start: datetime, end: datetime, tenant_id: UUID | None = None, at: datetime | None = None
) -> list[RevenueLine]:
    """Subscription revenue of the periods that start on the days ``[start, end)`` in each
    tenant's own timezone (a Tokyo tenant's October starts on 30 September UTC): the lines of
    every invoice that is not void (drafts included: they are the running bill), an adjustment
    line counted with the period it adjusts; and where a tenant's current period has no
    invoice yet, its preview."""
    first_day, end_day = start.date(), end.date()
    # Local midnights are within a day of UTC ones.
    window = (start - timedelta(days=1), end + timedelta(days=1))
    lines = (
        InvoiceLine.objects.filter(invoice__kind=Invoice.Kind.SUBSCRIPTION)
        .exclude(invoice__status=Invoice.Status.VOID)
        .filter(
            Q(invoice__period_start__range=window, adjusts_period_start=None)
            | Q(adjusts_period_start__range=window)
        )
    )
    if tenant_id is not None:
        lines = lines.filter(invoice__tenant_id=tenant_id)
    # Summed in the database by what attribution needs: a month of a big operator is tens
    # of thousands of lines, and model instances of each cost seconds.
    features = _meter_features()
    # The feature a meter filters on, for lines without a feature group of their own.
    meter_feature = Case(
        *(When(meter_code=code, then=Value(feature)) for code, feature in features.items()),
        default=Value(""),
        output_field=CharField(),
    )
    grouped = (
        lines.annotate(
            began=Coalesce("adjusts_period_start", "invoice__period_start"),
            feature=Coalesce(
                NullIf(KT("dimensions__feature"), Value("")),
                meter_feature,
                output_field=CharField(),
            ),
            adjusting=ExpressionWrapper(
                Q(adjusts_period_start__isnull=False), output_field=BooleanField()
            ),
        )
        .order_by()
        .values_list(
            "invoice__tenant_id",
            "invoice__tenant__timezone",
            "invoice__currency",
            "began",
            "feature",
            "adjusting",
        )
        .annotate(total=Sum("amount"))
    )
    out = []
    billed = set()
    zones: dict[str, ZoneInfo] = {}
    for tenant, zone_name, currency, began, feature, adjusting, total in grouped:
        zone = zones.get(zone_name) or zones.setdefault(zone_name, ZoneInfo(zone_name))
        if not first_day <= began.astimezone(zone).date() < end_day:
            continue
        if not adjusting:
            billed.add(tenant)
        out.append(RevenueLine(tenant, currency, str(feature or ""), total, "invoice"))
    at = at or timezone.now()
    if start <= at < end:
        open_subscriptions = Subscription.objects.filter(started_at__lte=at).exclude(
            ends_at__lte=at
        )
        if tenant_id is not None:
            open_subscriptions = open_subscriptions.filter(tenant_id=tenant_id)
        for tenant in sorted(set(open_subscriptions.values_list("tenant_id", flat=True)) - billed):
            preview = invoice_preview(tenant_id=tenant, at=at)
            if preview is None:
                continue
            for priced in preview.priced.lines:
                dims = dict(priced.dimensions)
                feature = str(dims.get("feature") or features.get(priced.meter, ""))
                out.append(
                    RevenueLine(tenant, preview.priced.currency, feature, priced.amount, "preview")
                )
    return out
