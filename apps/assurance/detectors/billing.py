"""Detectors over what was billed: usage of finalized periods not on any invoice, invoices that
disagree with their usage, credits the ledger and the invoices see differently, usage rated
at zero far past its free units, and tenants or features that cost more than they earn.

Invoices are repriced with billing's own functions (``charges_usage``, ``bill_price``,
``late_adjustments``), so "what the usage costs now" means exactly what the next billing run
would bill as an adjustment.
"""

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db.models import Count, Q, Sum

from apps.assurance.detectors.usage import event_samples
from apps.assurance.scope import Detected, ScanScope, cost_by_type, live_invoices
from apps.billing.models import CreditDebit, Invoice, InvoiceLine
from apps.billing.services.pricing import PeriodBill, bill_price, billed_so_far, late_adjustments
from apps.billing.services.usage import charges_usage
from apps.catalog.models import Charge
from apps.core.periods import BillingPeriod, hour_floor
from apps.costs.selectors import cost_totals, revenue_totals
from apps.metering.models import Event
from apps.metering.selectors import purged_hours

ZERO = Decimal(0)
_FINAL = (Invoice.Status.FINALIZED, Invoice.Status.PAID)


@dataclass
class Money:
    """Per tenant, in its invoices' currency: the list value of the month's usage now, what
    its invoices bill for usage (adjustments of finalized periods included), credits applied."""

    currency: str
    billable: Decimal = ZERO
    billed: Decimal = ZERO
    credited: Decimal = ZERO


@dataclass
class BillingFigures:
    money: dict[UUID, Money] = field(default_factory=dict)
    found: list[Detected] = field(default_factory=list)


def _bill(invoice: Invoice) -> PeriodBill | None:
    if invoice.subscription is None or invoice.plan is None or invoice.rate_card_version is None:
        return None
    period = BillingPeriod(invoice.period_start, invoice.period_end)
    return PeriodBill(
        invoice.subscription, invoice.tenant, period, invoice.plan, invoice.rate_card_version
    )


def _adjusting(invoices: list[Invoice]) -> dict[tuple[UUID, datetime], list[InvoiceLine]]:
    """Adjustment lines for these periods on invoices that are not void (a draft's will be
    billed when it is finalized), by (subscription, period start)."""
    lines = InvoiceLine.objects.filter(
        kind=InvoiceLine.Kind.ADJUSTMENT,
        invoice__subscription_id__in={i.subscription_id for i in invoices},
        adjusts_period_start__in={i.period_start for i in invoices},
    ).exclude(invoice__status=Invoice.Status.VOID)
    found: dict[tuple[UUID, datetime], list[InvoiceLine]] = defaultdict(list)
    for line in lines.select_related("invoice"):
        if line.invoice.subscription_id and line.adjusts_period_start:
            found[(line.invoice.subscription_id, line.adjusts_period_start)].append(line)
    return found


def _purged_invoices(invoices: list[Invoice]) -> set[UUID]:
    """The invoices whose period has an hour retention purged, in one query."""
    if not invoices:
        return set()
    # From the hour holding each period's start: a period starting on a half hour (a +05:30
    # tenant) has its first events in the hour before its start.
    hours = purged_hours(
        tenant_ids=list({i.tenant_id for i in invoices}),
        start=min(hour_floor(i.period_start) for i in invoices),
        end=max(i.period_end for i in invoices),
    )
    by_tenant: dict[UUID, list[datetime]] = defaultdict(list)
    for tenant_id, hour in hours:
        by_tenant[tenant_id].append(hour)
    for tenant_hours in by_tenant.values():
        tenant_hours.sort()
    found = set()
    for i in invoices:
        tenant_hours = by_tenant.get(i.tenant_id, [])
        at = bisect_left(tenant_hours, hour_floor(i.period_start))
        if at < len(tenant_hours) and tenant_hours[at] < i.period_end:
            found.add(i.id)
    return found


def _raw_meters(bill: PeriodBill) -> set[str]:
    """The meters of a bill that are counted from raw events, not rollups."""
    return {c.meter.code for c in bill.charges if c.meter.aggregation in ("unique_count", "latest")}


def _usage_total(
    lines: Any, *, billed: dict[str, Any] | None = None, raw: set[str] | None = None
) -> Decimal:
    """The usage lines' amount, taking what was billed for the lines of ``raw`` meters."""
    total = ZERO
    for line in lines:
        if line.kind.value != "usage":
            continue
        if raw and billed is not None and line.meter in raw:
            total += billed[line.key].amount
        else:
            total += line.amount
    return total


def invoice_check(*, scope: ScanScope) -> BillingFigures:
    """Reprice every live invoice of the month; for finalized ones, each charge whose usage
    moved since is ``late_unbilled`` when events of its type arrived after the invoice was
    issued, else ``quantity_mismatch`` (the invoice disagrees with its own usage)."""
    figures = BillingFigures()
    bills: dict[UUID, tuple[Invoice, PeriodBill]] = {}
    for tm in scope.months.values():
        for invoice in live_invoices(tm):
            invoice.tenant = tm.tenant
            bill = _bill(invoice)
            if bill is not None:
                bills[invoice.id] = (invoice, bill)
            money = figures.money.setdefault(tm.tenant.id, Money(invoice.currency))
            money.credited += invoice.credits_applied_amount
    if not bills:
        return figures
    purged = _purged_invoices([i for i, _ in bills.values() if i.status in _FINAL])
    usage = charges_usage(windows={b.window: b.charges for _, b in bills.values()})
    adjusting = _adjusting([i for i, _ in bills.values() if i.status in _FINAL])
    moved: list[tuple[Invoice, PeriodBill, str, Decimal, Decimal, Decimal]] = []
    for invoice, bill in bills.values():
        repriced = bill_price(bill, usage[bill.window])
        money = figures.money[invoice.tenant_id]
        if invoice.status not in _FINAL:
            money.billable += _usage_total(repriced.lines)
            money.billed += sum(
                (ln.amount for ln in invoice.lines.all() if ln.kind == InvoiceLine.Kind.USAGE), ZERO
            )
            continue
        billed = billed_so_far(
            invoice, adjusting.get((bill.subscription.id, invoice.period_start), [])
        )
        money.billed += sum((b.amount for k, b in billed.items() if k != "minimum"), ZERO)
        # Retention deleted raw events of a purged period, and unique counts and latest values
        # read raw events: repriced, they would be short of them. Those charges are worth what
        # was billed; the others are read from the rollups, which keep every event.
        raw = _raw_meters(bill) if invoice.id in purged else set()
        money.billable += _usage_total(repriced.lines, billed=billed, raw=raw)
        now = {ln.key: ln for ln in repriced.lines}
        for change in late_adjustments(
            finalized=invoice, repriced=repriced, billed=billed, label=""
        ):
            key = change.key.split("|", 1)[1]
            if key == "minimum" or change.meter in raw:
                continue  # the minimum follows usage: the usage line carries the finding
            line = now.get(key)
            meter = change.meter or key
            quantity = line.quantity if line is not None and line.quantity is not None else ZERO
            moved.append((invoice, bill, meter, change.quantity, change.amount, quantity))
    figures.found.extend(_moved_findings(moved))
    return figures


def _late_events(
    moved: list[tuple[Invoice, PeriodBill, str, Decimal, Decimal, Decimal]], types: dict[str, str]
) -> tuple[dict[tuple[UUID, str], int], dict[tuple[Any, ...], list[str]]]:
    """Events of each moved charge's type and period received after its invoice was issued:
    counts and samples per (tenant, event type)."""
    late_q = Q(pk__in=[])
    for invoice, bill, meter, *_ in moved:
        late_q |= Q(
            tenant_id=invoice.tenant_id,
            type=types.get(meter, ""),
            timestamp__gte=bill.period.start,
            timestamp__lt=bill.period.end,
            received_at__gt=invoice.issued_at,
        )
    rows = Event.objects.filter(late_q).values("tenant_id", "type").annotate(n=Count("*"))
    late = {(r["tenant_id"], r["type"]): r["n"] for r in rows.order_by()}
    return late, event_samples(late_q, ("tenant_id", "type"))


def _moved_findings(
    moved: list[tuple[Invoice, PeriodBill, str, Decimal, Decimal, Decimal]],
) -> list[Detected]:
    if not moved:
        return []
    types = {c.meter.code: c.meter.event_type for _, b, *_ in moved for c in b.charges}
    late, samples = _late_events(moved, types)
    merged: dict[tuple[str, UUID, str], dict[str, Any]] = {}
    for invoice, _bill, meter, quantity, amount, now in moved:
        event_type = types.get(meter, "")
        late_events = late.get((invoice.tenant_id, event_type), 0)
        category = "late_unbilled" if late_events else "quantity_mismatch"
        item = merged.setdefault(
            (category, invoice.tenant_id, meter),
            {"quantity": ZERO, "amount": ZERO, "currency": invoice.currency, "invoices": [],
             "usage_quantity": ZERO, "late_events": late_events,
             "samples": samples.get((invoice.tenant_id, event_type), [])},
        )  # fmt: skip
        item["quantity"] += quantity
        item["amount"] += amount
        item["usage_quantity"] += now
        item["invoices"].append(invoice.number)
    return [
        Detected(
            category=category,
            tenant_id=tenant_id,
            subject=meter,
            quantity=item["quantity"],
            unit="meter_units",
            amount=item["amount"],
            currency=item["currency"],
            basis="list_price",
            evidence={
                "invoices": sorted(set(item["invoices"])),
                "usage_quantity": _text(item["usage_quantity"]),
                "billed_quantity": _text(item["usage_quantity"] - item["quantity"]),
                "late_events": item["late_events"],
                "sample_event_ids": item["samples"],
            },
        )
        for (category, tenant_id, meter), item in sorted(merged.items(), key=str)
    ]


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


# --- credits --------------------------------------------------------------------------------


def credit_drift(*, scope: ScanScope) -> list[Detected]:
    """Invoices whose credits applied differ from what the credit ledger debited for them
    (debits less refunds; a void invoice should have had every debit refunded)."""
    invoices = {i.id: i for tm in scope.months.values() for i in tm.invoices}
    if not invoices:
        return []
    net: dict[UUID, Decimal] = defaultdict(lambda: ZERO)
    rows = (
        CreditDebit.objects.filter(invoice_id__in=list(invoices))
        .values("invoice_id", "kind")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    for row in rows:
        sign = 1 if row["kind"] == CreditDebit.Kind.DEBIT else -1
        net[row["invoice_id"]] += sign * row["total"]
    drift: dict[UUID, list[tuple[Invoice, Decimal, Decimal]]] = defaultdict(list)
    for invoice in invoices.values():
        applied = ZERO if invoice.status == Invoice.Status.VOID else invoice.credits_applied_amount
        if applied != net[invoice.id]:
            drift[invoice.tenant_id].append((invoice, applied, net[invoice.id]))
    found = []
    for tenant_id, items in sorted(drift.items(), key=str):
        applied = sum((a for _, a, _ in items), ZERO)
        consumed = sum((c for _, _, c in items), ZERO)
        found.append(
            Detected(
                category="credit_drift",
                tenant_id=tenant_id,
                subject="",
                quantity=applied - consumed,
                unit="credits",
                amount=abs(applied - consumed),
                currency=items[0][0].currency,
                basis="list_price",
                evidence={
                    "credits_applied": str(applied),
                    "credits_consumed": str(consumed),
                    "invoices": [
                        {
                            "invoice": str(i.id),
                            "number": i.number,
                            "status": i.status,
                            "applied": str(a),
                            "consumed": str(c),
                        }
                        for i, a, c in items
                    ],
                },
            )
        )
    return found


# --- usage rated at zero --------------------------------------------------------------------


def free_allowance(charge: Charge) -> Decimal | None:
    """Units a charge gives away by design: its free units plus its leading tiers priced at
    zero (``None`` when every unit is free, without bound)."""
    allowance = charge.free_units or ZERO
    if charge.model in (Charge.Model.GRADUATED, Charge.Model.VOLUME):
        for tier in charge.tiers or []:
            if Decimal(tier.get("unit_price") or 0) or Decimal(tier.get("flat_fee") or 0):
                break
            if tier.get("up_to") is None:
                return None
            allowance = Decimal(tier["up_to"]) + (charge.free_units or ZERO)
    return allowance


def over_plan_at_zero(*, scope: ScanScope) -> list[Detected]:
    """Usage lines billed at zero whose quantity is more than ``PERCALL_LEAKAGE_OVER_PLAN_FACTOR``
    times their charge's free allowance. Priced at cost: the excess share of what the calls
    of the meter's event type cost in the month."""
    factor = Decimal(settings.PERCALL_LEAKAGE_OVER_PLAN_FACTOR)
    costs = cost_by_type(scope)
    found = []
    for tenant_id, tm in scope.months.items():
        for invoice in live_invoices(tm):
            for line in invoice.lines.all():
                charge = line.charge
                if line.kind != InvoiceLine.Kind.USAGE or line.amount or charge is None:
                    continue
                allowance = free_allowance(charge)
                quantity = line.quantity or ZERO
                if not allowance or quantity <= factor * allowance:
                    continue
                excess = quantity - allowance
                calls, cost = costs.get((tenant_id, charge.meter.event_type), (0, ZERO))
                found.append(
                    Detected(
                        category="over_plan_at_zero",
                        tenant_id=tenant_id,
                        subject=charge.meter.code,
                        quantity=excess,
                        unit="meter_units",
                        amount=cost * excess / quantity,
                        currency=scope.operator_currency,
                        basis="cost",
                        evidence={
                            "invoice": invoice.number or str(invoice.id),
                            "quantity": _text(quantity),
                            "free_allowance": _text(allowance),
                            "factor": _text(factor),
                            "type_calls": calls,
                            "type_cost": str(cost),
                        },
                    )
                )
    return found


# --- margin ---------------------------------------------------------------------------------


def negative_margin(*, scope: ScanScope) -> list[Detected]:
    """Tenants, and features with revenue of their own, whose cost in the UTC month exceeds
    their billed revenue (before credits and tax, in the operator currency) by at least
    ``PERCALL_LEAKAGE_MARGIN_FLOOR``."""
    period = scope.cost_period
    # A loss below the floor is not worth a finance person's time (a feature whose few calls
    # all fell in its free allowance loses cents by design); it still shows in the margins.
    floor = max(Decimal(settings.PERCALL_LEAKAGE_MARGIN_FLOOR), Decimal("1e-12"))
    found = []
    for groups in (("tenant",), ("tenant", "feature")):
        costs = cost_totals(period=period, group_by=groups, sums=("cost",))
        revenue, missing = revenue_totals(period=period, group_by=groups)
        for key in sorted(set(costs) | set(revenue)):
            tenant_id = UUID(key[0])
            feature = key[1] if len(key) > 1 else ""
            tm = scope.months.get(tenant_id)
            # Usage without a subscription is its own finding, with its cost.
            if tm is None or not tm.subscriptions or tm.tenant.currency in missing:
                continue
            if len(key) > 1 and key not in revenue:
                continue
            if len(key) > 1 and not feature:
                continue  # revenue not tied to a feature: the tenant's own line covers it
            cost = costs.get(key, {}).get("cost", ZERO)
            income = revenue.get(key, ZERO)
            if cost - income < floor:
                continue
            found.append(
                Detected(
                    category="negative_margin",
                    tenant_id=tenant_id,
                    subject=feature,
                    quantity=Decimal(costs.get(key, {}).get("calls", 0)),
                    unit="events",
                    amount=cost - income,
                    currency=scope.operator_currency,
                    basis="cost",
                    evidence={"cost": str(cost), "revenue": str(income), "utc_month": period.label},
                )
            )
    return found
