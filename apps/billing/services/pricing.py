"""From a subscription's period to the rating engine's input, and late usage to adjustments.

Billing loads rows, maps them here to ``apps.rating`` dataclasses, calls the engine and gets
priced lines back; nothing in this module writes.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from apps.billing.models import Invoice, InvoiceLine, PlanChange, Subscription
from apps.billing.services.subscriptions import plan_at
from apps.billing.services.usage import ChargeUsage
from apps.catalog.models import Charge, Plan, RateCardVersion
from apps.catalog.selectors import charge_spec_of
from apps.core.periods import BillingPeriod, calendar_period, period_days
from apps.metering.selectors import UsageWindow
from apps.rating.invoices import (
    AdjustmentInput,
    InvoiceInput,
    PricedInvoice,
    Share,
    UsageInput,
    invoice_price,
)
from apps.tenants.models import Tenant

ZERO = Decimal(0)


@dataclass(frozen=True)
class PeriodBill:
    """One subscription period to invoice, with what prices it."""

    subscription: Subscription
    tenant: Tenant
    period: BillingPeriod
    plan: Plan
    version: RateCardVersion

    @property
    def window(self) -> UsageWindow:
        return UsageWindow(self.tenant.id, self.period.start, self.period.end)

    @property
    def charges(self) -> list[Charge]:
        return list(self.version.charges.all())


class NoRateCardVersion(LookupError):
    """No version of the plan's rate card was in effect at the period's start."""


def version_at(versions: list[RateCardVersion], at: datetime) -> RateCardVersion:
    """The version (of one rate card, oldest first) in effect at ``at``."""
    chosen = None
    for version in versions:
        if version.effective_from <= at:
            chosen = version
    if chosen is None:
        raise NoRateCardVersion(at)
    return chosen


def period_bill(
    *,
    subscription: Subscription,
    period: BillingPeriod,
    changes: list[PlanChange],
    versions: dict[object, list[RateCardVersion]],
) -> PeriodBill:
    plan = plan_at(subscription, changes, period.start)
    version = version_at(versions.get(plan.rate_card_id, []), period.start)
    return PeriodBill(subscription, subscription.tenant, period, plan, version)


def shares(bill: PeriodBill) -> tuple[Share, Share]:
    """(share of the base fee, share of the commitment): days active in the period over the
    days of its calendar period; the base fee also leaves out trial days."""
    tz = bill.tenant.timezone
    calendar = calendar_period(bill.period.start, timezone_name=tz, interval=bill.plan.interval)
    of_days = period_days(calendar, timezone_name=tz)
    active = period_days(bill.period, timezone_name=tz)
    share = Share(active, of_days)
    trial_end = bill.subscription.trial_ends_at
    if trial_end is None or trial_end <= bill.period.start:
        return share, share
    if trial_end >= bill.period.end:
        return Share(0, of_days), share
    zone = ZoneInfo(tz)
    local_end = trial_end.astimezone(zone)
    # The day the trial ends in is a trial day, unless the trial ends at its midnight.
    first_paying = local_end.date() + timedelta(days=0 if local_end.time() == time(0) else 1)
    last_day = (bill.period.end - timedelta(microseconds=1)).astimezone(zone).date()
    return Share(max(0, (last_day - first_paying).days + 1), of_days), share


def charge_key(charge: Charge) -> str:
    return f"charge:{charge.position}:{charge.meter.code}"


def charge_description(charge: Charge) -> str:
    name = charge.description or charge.meter.name or charge.meter.code
    if charge.filters:
        picked = ", ".join(f"{k} {v}" for k, v in sorted(charge.filters.items()))
        name = f"{name} ({picked})"
    return name


def usage_inputs(usages: Iterable[ChargeUsage]) -> tuple[UsageInput, ...]:
    return tuple(
        UsageInput(
            key=charge_key(u.charge),
            description=charge_description(u.charge),
            meter=u.charge.meter.code,
            charge=charge_spec_of(u.charge),
            quantity=u.quantity,
            dimensions=tuple(sorted((u.charge.filters or {}).items())),
        )
        for u in usages
    )


def bill_price(
    bill: PeriodBill,
    usages: list[ChargeUsage],
    adjustments: tuple[AdjustmentInput, ...] = (),
    credits_available: Decimal = ZERO,
) -> PricedInvoice:
    fee_share, share = shares(bill)
    return invoice_price(
        InvoiceInput(
            currency=bill.plan.currency,
            base_fee=bill.plan.base_fee_amount,
            minimum_commitment=bill.plan.minimum_commitment_amount,
            share=share,
            base_fee_share=fee_share,
            usage=usage_inputs(usages),
            adjustments=adjustments,
            credits_available=credits_available,
            tax_rate=bill.tenant.tax_rate,
            plan_name=bill.plan.name,
        )
    )


# --- late usage ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Billed:
    quantity: Decimal
    amount: Decimal


def billed_so_far(invoice: Invoice, adjustment_lines: list[InvoiceLine]) -> dict[str, Billed]:
    """What a finalized invoice and the adjustments for its period on other finalized
    invoices billed, by line key (usage charges and the minimum)."""
    billed: dict[str, Billed] = defaultdict(lambda: Billed(ZERO, ZERO))
    for line in invoice.lines.all():
        if line.kind in (InvoiceLine.Kind.USAGE, InvoiceLine.Kind.MINIMUM):
            billed[line.key] = Billed(line.quantity or ZERO, line.amount)
    for line in adjustment_lines:
        key = line.key.split("|", 1)[1]
        before = billed[key]
        billed[key] = Billed(before.quantity + (line.quantity or ZERO), before.amount + line.amount)
    return billed


def late_adjustments(
    *,
    finalized: Invoice,
    repriced: PricedInvoice,
    billed: dict[str, Billed],
    label: str,
) -> list[AdjustmentInput]:
    """Adjustments that bring what ``finalized``'s period billed up to what its usage costs
    now, one per usage charge (and the minimum) whose amount or quantity moved."""
    adjustments = []
    for line in repriced.lines:
        if line.kind.value not in ("usage", "minimum"):
            continue
        before = billed.get(line.key, Billed(ZERO, ZERO))
        quantity = (line.quantity or ZERO) - before.quantity
        amount = line.amount - before.amount
        if amount == 0 and quantity == 0:
            continue
        what = "minimum commitment" if line.kind.value == "minimum" else line.description
        adjustments.append(
            AdjustmentInput(
                key=f"late:{finalized.id}|{line.key}",
                description=f"Late usage for {label}: {what}",
                meter=line.meter,
                quantity=quantity,
                amount=amount,
            )
        )
    for key, before in billed.items():  # a charge billed before but priced at 0 now
        if before.amount and not any(line.key == key for line in repriced.lines):
            adjustments.append(
                AdjustmentInput(
                    key=f"late:{finalized.id}|{key}",
                    description=f"Late usage for {label}: {key}",
                    meter="",
                    quantity=-before.quantity,
                    amount=-before.amount,
                )
            )
    return adjustments
