"""Invoice drafts and their finalization, for one or for thousands at a time.

``invoices_bill`` is the one path that prices subscription periods: it creates or refreshes
each period's draft, with late usage of finalized periods as adjustment lines, and finalizes
the drafts whose grace period is over: credits, tax, a gapless number, then the PDF after
commit. The caller holds the subscriptions' row locks (the first lock of every billing write).
"""

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Prefetch

from apps.billing.models import CreditDebit, CreditNote, Invoice, InvoiceLine, Subscription
from apps.billing.services.credits import (
    credit_grants_locked,
    credits_available,
    credits_spend,
    credits_spent_save,
)
from apps.billing.services.events import invoices_event_publish
from apps.billing.services.numbering import numbers_allocate
from apps.billing.services.pricing import (
    PeriodBill,
    bill_price,
    billed_so_far,
    late_adjustments,
)
from apps.billing.services.usage import charges_usage
from apps.catalog.models import Charge
from apps.catalog.services.locks import rate_card_versions_lock
from apps.core.audit import AuditChange, audits_record
from apps.core.bulk import rows_update
from apps.core.jobs import job_enqueue_on_commit
from apps.core.money import quantize
from apps.core.periods import BillingPeriod
from apps.metering.selectors import rollup_pending_marks
from apps.rating.invoices import AdjustmentInput, PricedInvoice, PricedLine, invoice_total

ZERO = Decimal(0)
_LATE = "late:"  # adjustment keys: late:<finalized invoice id>|<line key>


@dataclass
class BillOutcome:
    drafted: list[Invoice] = field(default_factory=list)
    refreshed: list[Invoice] = field(default_factory=list)
    finalized: list[Invoice] = field(default_factory=list)
    # Drafts whose period is over but whose usage still waits in the rollup queue: they are
    # finalized by a later run, once their usage is all in.
    waiting: list[Invoice] = field(default_factory=list)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _tiers(line: PricedLine) -> list[dict[str, Any]]:
    return [
        {
            "tier": s.tier,
            "after": _text(s.after),
            "up_to": _text(s.up_to),
            "quantity": _text(s.quantity),
            "unit_price": _text(s.unit_price),
            "flat_fee": _text(s.flat_fee),
            "amount": _text(s.amount),
        }
        for s in line.tiers
    ]


def _line_rows(
    invoice: Invoice,
    priced: PricedInvoice,
    charges: list[Charge],
    adjusted: dict[str, Invoice],
) -> list[InvoiceLine]:
    """The invoice's line rows; ``adjusted`` maps finalized invoice ids (as text) to the
    invoices whose late usage adjustment lines bill."""
    by_key = {f"charge:{c.position}:{c.meter.code}": c for c in charges}
    rows = []
    for position, line in enumerate(priced.lines):
        adjusts = None
        if line.key.startswith(_LATE):
            adjusts = adjusted.get(line.key.removeprefix(_LATE).split("|", 1)[0])
        rows.append(
            InvoiceLine(
                invoice=invoice,
                position=position,
                kind=line.kind.value,
                key=line.key[:64],
                charge=by_key.get(line.key),
                description=line.description[:300],
                meter_code=line.meter,
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount=line.amount,
                tiers=_tiers(line),
                dimensions=dict(line.dimensions),
                adjusts_period_start=adjusts.period_start if adjusts else None,
                adjusts_period_end=adjusts.period_end if adjusts else None,
            )
        )
    return rows


def _totals_set(invoice: Invoice, priced: PricedInvoice) -> None:
    invoice.subtotal_amount = priced.subtotal
    invoice.credits_applied_amount = priced.credits_applied
    invoice.tax_amount = priced.tax
    invoice.total_amount = priced.total


def content_hash(
    invoice: Invoice, lines: list[InvoiceLine], notes: Iterable[CreditNote] | None = None
) -> str:
    """What the invoice shows, hashed: its PDF is rendered again only when this changes (its
    status and dates, its lines and totals, its credit notes: read from the database unless
    given, as ``()`` for an invoice that cannot have any yet)."""
    if notes is None:
        notes = invoice.credit_notes.order_by("issued_at")
    shown = {
        "number": invoice.number,
        "status": invoice.status,
        "paid": invoice.paid_at,
        "voided": [invoice.voided_at, invoice.void_reason],
        "notes": [[n.number, n.amount, n.reason] for n in notes],
        "period": [invoice.period_start.isoformat(), invoice.period_end.isoformat()],
        "totals": [
            invoice.subtotal_amount,
            invoice.credits_applied_amount,
            invoice.tax_amount,
            invoice.total_amount,
        ],
        "issued": invoice.issued_at,
        "due": invoice.due_at,
        "lines": [
            [ln.kind, ln.description, ln.quantity, ln.unit_price, ln.amount, ln.tiers]
            for ln in lines
        ],
    }
    canonical = json.dumps(shown, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- late usage ---------------------------------------------------------------------------


def _finalized_recent(subscription_ids: set[UUID], as_of: datetime) -> dict[UUID, list[Invoice]]:
    """Finalized invoices of these subscriptions whose periods can still get late events."""
    window = timedelta(days=settings.PERCALL_INGEST_LATE_WINDOW_DAYS)
    charges = Charge.objects.select_related("meter").order_by("position")
    rows = (
        Invoice.objects.filter(
            subscription_id__in=subscription_ids,
            kind=Invoice.Kind.SUBSCRIPTION,
            status__in=[Invoice.Status.FINALIZED, Invoice.Status.PAID],
            period_end__gt=as_of - window,
        )
        .select_related("plan", "rate_card_version")
        .prefetch_related("lines", Prefetch("rate_card_version__charges", queryset=charges))
        .order_by("period_start")
    )
    found: dict[UUID, list[Invoice]] = defaultdict(list)
    for invoice in rows:
        if invoice.subscription_id is not None and invoice.rate_card_version is not None:
            found[invoice.subscription_id].append(invoice)
    return found


def _adjustment_lines(invoices: list[Invoice]) -> dict[tuple[UUID, datetime], list[InvoiceLine]]:
    """Finalized adjustment lines, by (subscription, the period start they adjust)."""
    if not invoices:
        return {}
    lines = InvoiceLine.objects.filter(
        kind=InvoiceLine.Kind.ADJUSTMENT,
        invoice__subscription_id__in={i.subscription_id for i in invoices},
        invoice__status__in=[Invoice.Status.FINALIZED, Invoice.Status.PAID],
        adjusts_period_start__in={i.period_start for i in invoices},
    ).select_related("invoice")
    found: dict[tuple[UUID, datetime], list[InvoiceLine]] = defaultdict(list)
    for line in lines:
        if line.invoice.subscription_id is not None and line.adjusts_period_start is not None:
            found[(line.invoice.subscription_id, line.adjusts_period_start)].append(line)
    return found


def _late_usage(
    bills: list[PeriodBill], as_of: datetime
) -> tuple[dict[PeriodBill, tuple[AdjustmentInput, ...]], dict[str, Invoice]]:
    """For each bill, adjustments for late usage of its subscription's earlier finalized
    periods; and those finalized invoices by id (as text)."""
    finalized = _finalized_recent({b.subscription.id for b in bills}, as_of)
    previous = [i for invoices in finalized.values() for i in invoices]
    if not previous:
        return dict.fromkeys(bills, ()), {}
    subscriptions = {b.subscription.id: b.subscription for b in bills}
    old_bills = {}
    for invoice in previous:
        assert invoice.subscription_id is not None and invoice.rate_card_version is not None
        assert invoice.plan is not None
        subscription = subscriptions[invoice.subscription_id]
        old_bills[invoice.id] = PeriodBill(
            subscription,
            subscription.tenant,
            BillingPeriod(invoice.period_start, invoice.period_end),
            invoice.plan,
            invoice.rate_card_version,
        )
    usage = charges_usage(windows={b.window: b.charges for b in old_bills.values()})
    adjusting = _adjustment_lines(previous)
    result: dict[PeriodBill, tuple[AdjustmentInput, ...]] = {}
    for bill in bills:
        adjustments: list[AdjustmentInput] = []
        for invoice in finalized.get(bill.subscription.id, []):
            if invoice.period_start >= bill.period.start:
                continue
            old = old_bills[invoice.id]
            month = invoice.period_start.astimezone(ZoneInfo(bill.tenant.timezone))
            already = adjusting.get((bill.subscription.id, invoice.period_start), [])
            adjustments.extend(
                late_adjustments(
                    finalized=invoice,
                    repriced=bill_price(old, usage[old.window]),
                    billed=billed_so_far(invoice, already),
                    label=f"{month:%Y-%m} ({invoice.number})",
                )
            )
        result[bill] = tuple(adjustments)
    return result, {str(i.id): i for i in previous}


# --- drafting and finalizing ----------------------------------------------------------------


def _existing(bills: list[PeriodBill]) -> dict[tuple[UUID, datetime], Invoice]:
    rows = Invoice.objects.filter(
        subscription_id__in={b.subscription.id for b in bills},
        kind=Invoice.Kind.SUBSCRIPTION,
        period_start__in={b.period.start for b in bills},
    ).exclude(status=Invoice.Status.VOID)
    return {(i.subscription_id, i.period_start): i for i in rows if i.subscription_id}


@dataclass
class _Draft:
    bill: PeriodBill
    invoice: Invoice
    priced: PricedInvoice  # replaced by the credited totals when finalized


def invoices_bill(
    *, bills: list[PeriodBill], as_of: datetime, grace: timedelta | None = None
) -> BillOutcome:
    """Create or refresh the draft of every bill, then finalize those whose period ended at
    least ``grace`` (default: the configured grace period) before ``as_of``. Bills of one
    subscription must come oldest first. Call inside a transaction holding the subscriptions'
    row locks.

    Everything is priced and finalized in memory first, then written in a few statements:
    a new invoice whose grace is already over is inserted finalized."""
    outcome = BillOutcome()
    existing = _existing(bills)
    todo = [
        b
        for b in bills
        if existing.get((b.subscription.id, b.period.start)) is None
        or existing[(b.subscription.id, b.period.start)].status == Invoice.Status.DRAFT
    ]
    if not todo:
        return outcome
    if grace is None:
        grace = timedelta(seconds=settings.PERCALL_BILLING_GRACE_SECONDS)
    # Before usage is read: a rollup that commits after this check is then in what is read.
    waits = _usage_incomplete([b for b in todo if b.period.end + grace <= as_of], grace)
    usage = charges_usage(windows={b.window: b.charges for b in todo})
    late, adjusted = _late_usage(todo, as_of)
    drafts: list[_Draft] = []
    new_invoices: list[Invoice] = []
    for bill in todo:
        priced = bill_price(bill, usage[bill.window], late[bill])
        invoice = existing.get((bill.subscription.id, bill.period.start))
        if invoice is None:
            invoice = Invoice(
                tenant=bill.tenant,
                subscription=bill.subscription,
                kind=Invoice.Kind.SUBSCRIPTION,
                currency=bill.plan.currency,
                period_start=bill.period.start,
                period_end=bill.period.end,
                created_at=as_of,
            )
            new_invoices.append(invoice)
            outcome.drafted.append(invoice)
        else:
            outcome.refreshed.append(invoice)
        invoice.plan = bill.plan
        invoice.rate_card_version = bill.version
        invoice.tax_rate = bill.tenant.tax_rate
        invoice.refreshed_at = as_of
        invoice.updated_at = as_of
        _totals_set(invoice, priced)
        drafts.append(_Draft(bill, invoice, priced))
    due = [d for d in drafts if d.bill.period.end + grace <= as_of and id(d.bill) not in waits]
    outcome.waiting = [d.invoice for d in drafts if id(d.bill) in waits]
    debits = _finalize_in_memory(due, as_of) if due else []
    outcome.finalized = [d.invoice for d in due]
    lines: list[InvoiceLine] = []
    for draft in drafts:
        rows = _line_rows(draft.invoice, draft.priced, draft.bill.charges, adjusted)
        draft.invoice.content_hash = content_hash(draft.invoice, rows, notes=())
        lines.extend(rows)
    fresh = {i.id for i in new_invoices}
    refreshed = [d.invoice for d in drafts if d.invoice.id not in fresh]
    InvoiceLine.objects.filter(invoice_id__in=[i.id for i in refreshed]).delete()
    Invoice.objects.bulk_create(new_invoices, batch_size=1000)
    rows_update(
        table=Invoice._meta.db_table,
        key="id",
        columns=_WRITTEN,
        types=_WRITTEN_TYPES,
        rows=[[i.id, *(getattr(i, c) for c in _WRITTEN)] for i in refreshed],
    )
    InvoiceLine.objects.bulk_create(lines, batch_size=2000)
    if due:
        _finalized_record(due, debits)
    return outcome


# The columns a refresh or a finalization sets, and their PostgreSQL types.
_WRITTEN = [
    "plan_id",
    "rate_card_version_id",
    "tax_rate",
    "refreshed_at",
    "subtotal_amount",
    "credits_applied_amount",
    "tax_amount",
    "total_amount",
    "content_hash",
    "updated_at",
    "status",
    "number",
    "issued_at",
    "due_at",
]
_WRITTEN_TYPES = [
    "uuid",
    "uuid",
    "numeric",
    "timestamptz",
    "numeric",
    "numeric",
    "numeric",
    "numeric",
    "text",
    "timestamptz",
    "text",
    "text",
    "timestamptz",
    "timestamptz",
]


def _usage_incomplete(due: list[PeriodBill], grace: timedelta) -> set[int]:
    """The bills (by ``id()``) due to finalize whose usage is not all rolled up: their tenant
    has an hour before the period's end in the rollup queue (usage of the period, or late usage
    of an earlier one, which this invoice carries) marked by the end of the grace period.
    Usage marked after that arrived late and goes on the next invoice as an adjustment, so a
    tenant whose clients keep replaying old events cannot hold its invoice forever."""
    if not due:
        return set()
    marks = rollup_pending_marks(
        tenant_ids={b.tenant.id for b in due},
        before=max(b.period.end for b in due),
        marked_by=max(b.period.end for b in due) + grace,
    )
    return {
        id(bill)
        for bill in due
        if any(
            hour < bill.period.end and marked <= bill.period.end + grace
            for hour, marked in marks.get(bill.tenant.id, ())
        )
    }


def invoice_audit_values(invoice: Invoice) -> dict[str, Any]:
    """What the audit log shows of an invoice: its state and its money (in minor units, which
    every total already is: sums of rounded lines)."""
    money = ("subtotal_amount", "credits_applied_amount", "tax_amount", "total_amount")
    return {
        "status": invoice.status,
        "number": invoice.number,
        "currency": invoice.currency,
        **{name: quantize(Decimal(getattr(invoice, name)), invoice.currency) for name in money},
    }


def _finalize_in_memory(due: list[_Draft], as_of: datetime) -> list[CreditDebit]:
    """Credits from locked grants, tax on what remains, numbers in (tenant, period) order.
    Returns the credit debits to write."""
    due.sort(key=lambda d: (d.bill.tenant.external_id, d.invoice.period_start))
    grants = credit_grants_locked(tenant_ids=sorted({d.bill.tenant.id for d in due}))
    numbers = numbers_allocate(kind="invoice", year=as_of.year, count=len(due))
    debits: list[CreditDebit] = []
    for draft, number in zip(due, numbers, strict=True):
        invoice, tenant = draft.invoice, draft.bill.tenant
        tenant_grants = grants.get(tenant.id, [])
        available = credits_available(
            tenant_grants, currency=invoice.currency, at=invoice.period_end
        )
        if available:
            draft.priced = invoice_total(
                draft.priced.currency, draft.priced.lines, available, tenant.tax_rate
            )
            debits.extend(
                credits_spend(
                    grants=tenant_grants, invoice=invoice, amount=draft.priced.credits_applied
                )
            )
        _totals_set(invoice, draft.priced)
        invoice.status = Invoice.Status.FINALIZED
        invoice.number = number
        invoice.issued_at = as_of
        invoice.due_at = as_of + timedelta(days=settings.PERCALL_INVOICE_DUE_DAYS)
    return debits


def _finalized_record(due: list[_Draft], debits: list[CreditDebit]) -> None:
    """What finalizing writes beside the invoices: credit debits, the rate-card versions
    locked into history, ``billed_through``, and a PDF render queued for after commit."""
    credits_spent_save(debits=debits)
    versions: dict[UUID, datetime] = {}
    hashes: dict[UUID, str] = {}
    for draft in due:
        start, version = draft.bill.period.start, draft.bill.version
        versions[version.id] = max(versions.get(version.id, start), start)
        hashes[version.id] = version.content_hash
    rate_card_versions_lock(version_period_starts=versions, priced_hashes=hashes)
    _billed_through_advance([(d.bill, d.invoice) for d in due])
    invoices_event_publish(topic="invoice.finalized", invoices=[d.invoice for d in due])
    audits_record(
        changes=(
            AuditChange(
                action="invoice.finalize",
                target_type="invoice",
                target_id=d.invoice.id,
                tenant_id=d.invoice.tenant_id,
                before={"status": Invoice.Status.DRAFT},
                after=invoice_audit_values(d.invoice),
            )
            for d in due
        )
    )
    for draft in due:
        job_enqueue_on_commit(
            name="billing.invoice_render_pdf", kwargs={"invoice_id": str(draft.invoice.id)}
        )


def _billed_through_advance(due: list[tuple[PeriodBill, Invoice]]) -> None:
    latest: dict[UUID, tuple[Subscription, datetime]] = {}
    for bill, invoice in due:
        known = latest.get(bill.subscription.id)
        if known is None or invoice.period_end > known[1]:
            latest[bill.subscription.id] = (bill.subscription, invoice.period_end)
    changed = []
    for subscription, end in latest.values():
        if subscription.billed_through is None or subscription.billed_through < end:
            subscription.billed_through = end
            changed.append(subscription)
    rows_update(
        table=Subscription._meta.db_table,
        key="id",
        columns=["billed_through"],
        types=["timestamptz"],
        rows=[[s.id, s.billed_through] for s in changed],
    )


def invoice_shown_changed(*, invoice: Invoice) -> None:
    """After a status change or a credit note: hash what the invoice now shows and queue its
    PDF, which is rendered again only because that hash moved."""
    invoice.content_hash = content_hash(invoice, list(invoice.lines.order_by("position")))
    Invoice.objects.filter(id=invoice.id).update(content_hash=invoice.content_hash)
    job_enqueue_on_commit(name="billing.invoice_render_pdf", kwargs={"invoice_id": str(invoice.id)})
