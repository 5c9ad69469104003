"""One invoice at a time: finalize a draft now, void (and reissue), mark paid, credit notes.

Locks are taken in the one order of every billing write: subscription, invoice, credit grants.
"""

from datetime import timedelta
from decimal import Decimal
from uuid import UUID

from django.db import transaction
from django.db.models import QuerySet, Sum
from django.utils import timezone

from apps.billing.errors import (
    BillingInvalid,
    InvoiceNotDraft,
    InvoiceNotFinalized,
    InvoiceNotFound,
    UsagePending,
)
from apps.billing.models import CreditNote, Invoice, PlanChange, Subscription
from apps.billing.services.credits import credits_refund
from apps.billing.services.events import invoices_event_publish
from apps.billing.services.invoices import (
    invoice_audit_values,
    invoice_shown_changed,
    invoices_bill,
)
from apps.billing.services.numbering import numbers_allocate
from apps.billing.services.pricing import NoRateCardVersion, period_bill
from apps.billing.services.subscriptions import subscriptions_for_update
from apps.catalog.selectors import rate_card_versions
from apps.core.audit import audit_record
from apps.core.money import quantize
from apps.core.periods import BillingPeriod, hour_floor
from apps.metering.selectors import purged_hours


def invoices_for_update() -> QuerySet[Invoice]:
    """Invoices under their row lock: taken after the subscription's, before any grant's."""
    return Invoice.objects.select_for_update()


def _locked(invoice_id: UUID) -> tuple[Subscription | None, Invoice]:
    """Lock the invoice's subscription, then the invoice (the one lock order)."""
    found = Invoice.objects.filter(id=invoice_id).values_list("subscription_id", flat=True)
    if not found:
        raise InvoiceNotFound(f"invoice {invoice_id} not found")
    subscription = None
    if found[0] is not None:
        subscription = subscriptions_for_update().select_related("tenant", "plan").get(id=found[0])
    invoice = invoices_for_update().select_related("tenant").get(id=invoice_id)
    return subscription, invoice


@transaction.atomic(durable=True)
def invoice_finalize(*, invoice_id: UUID) -> Invoice:
    """Finalize a draft now, without waiting for its grace period: priced again from current
    usage, then credits, tax and a number. Its period must be over."""
    subscription, invoice = _locked(invoice_id)
    if invoice.status != Invoice.Status.DRAFT:
        raise InvoiceNotDraft(
            f"invoice {invoice.number or invoice.id} is {invoice.status}; only a draft can be "
            "finalized"
        )
    now = timezone.now()
    if invoice.period_end > now or subscription is None:
        raise BillingInvalid(
            f"invoice {invoice.id}: its period ends {invoice.period_end.isoformat()}; a draft "
            "is finalized once its period is over"
        )
    changes = list(PlanChange.objects.filter(subscription=subscription).select_related("plan"))
    cards = {subscription.plan.rate_card_id, *(c.plan.rate_card_id for c in changes)}
    versions: dict[object, list] = {}
    for version in rate_card_versions(rate_card_ids=list(cards)):
        versions.setdefault(version.rate_card_id, []).append(version)
    try:
        bill = period_bill(
            subscription=subscription,
            period=BillingPeriod(invoice.period_start, invoice.period_end),
            changes=changes,
            versions=versions,
        )
    except NoRateCardVersion as exc:
        raise BillingInvalid(f"invoice {invoice.id}: no rate-card version in effect") from exc
    outcome = invoices_bill(bills=[bill], as_of=now, grace=timedelta(0))
    if outcome.waiting:
        raise UsagePending(
            f"invoice {invoice.id}: usage of its period is still being rolled up; the next "
            "billing run finalizes it once all of it is in",
            field="invoice_id",
        )
    return outcome.finalized[0]


@transaction.atomic(durable=True)
def invoice_void(*, invoice_id: UUID, reason: str, reissue: bool = False) -> Invoice:
    """Void an invoice: it keeps its number, the credits it used go back to their grants
    (once), and with ``reissue`` a new draft for the same period takes its place. Returns
    the reissued draft, or the void invoice."""
    if not reason.strip():
        raise BillingInvalid("reason: say why the invoice is voided", field="reason")
    subscription, invoice = _locked(invoice_id)
    if invoice.status == Invoice.Status.VOID:
        raise InvoiceNotDraft(f"invoice {invoice.number or invoice.id} is already void")
    # From the hour holding the period's start: a period starting on a half hour has its first
    # events in the hour before its start, and that hour's purge deleted some of them.
    if reissue and purged_hours(
        tenant_ids=[invoice.tenant_id],
        start=hour_floor(invoice.period_start),
        end=invoice.period_end,
    ):
        # A reissue reprices the period, and unique counts read raw events retention deleted.
        raise BillingInvalid(
            f"reissue: the raw events of invoice {invoice.number}'s period were deleted by "
            "retention, so it cannot be priced again; issue a credit note to correct it",
            field="reissue",
        )
    if invoice.status == Invoice.Status.PAID:
        raise InvoiceNotDraft(
            f"invoice {invoice.number} is paid; issue a credit note to correct it"
        )
    before = invoice_audit_values(invoice)
    refunded = credits_refund(invoice=invoice)
    was_finalized = invoice.status == Invoice.Status.FINALIZED
    invoice.status = Invoice.Status.VOID
    invoice.voided_at = timezone.now()
    invoice.void_reason = reason.strip()[:500]
    invoice.save(update_fields=["status", "voided_at", "void_reason", "updated_at"])
    if was_finalized:
        invoice_shown_changed(invoice=invoice)
    invoices_event_publish(topic="invoice.voided", invoices=[invoice])
    audit_record(
        action="invoice.void",
        target_type="invoice",
        target_id=invoice.id,
        tenant_id=invoice.tenant_id,
        before=before,
        after={"status": invoice.status, "reason": invoice.void_reason,
               "credits_refunded_amount": quantize(refunded, invoice.currency), "reissue": reissue},
    )  # fmt: skip
    if not reissue or subscription is None or invoice.kind != Invoice.Kind.SUBSCRIPTION:
        return invoice
    draft = Invoice.objects.create(
        tenant=invoice.tenant,
        subscription=subscription,
        kind=invoice.kind,
        currency=invoice.currency,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        plan=invoice.plan,
        rate_card_version=invoice.rate_card_version,
        tax_rate=invoice.tax_rate,
        reissue_of=invoice,
    )
    if subscription.billed_through is not None and subscription.billed_through >= draft.period_end:
        # The run resumes from here, so the reissue is priced and finalized like any draft.
        subscription.billed_through = draft.period_start
        subscription.save(update_fields=["billed_through", "updated_at"])
    return draft


@transaction.atomic(durable=True)
def invoice_mark_paid(*, invoice_id: UUID) -> Invoice:
    _, invoice = _locked(invoice_id)
    if invoice.status != Invoice.Status.FINALIZED:
        raise InvoiceNotFinalized(
            f"invoice {invoice.number or invoice.id} is {invoice.status}; only a finalized "
            "invoice can be paid"
        )
    before = invoice_audit_values(invoice)
    invoice.status = Invoice.Status.PAID
    invoice.paid_at = timezone.now()
    invoice.save(update_fields=["status", "paid_at", "updated_at"])
    audit_record(
        action="invoice.mark_paid",
        target_type="invoice",
        target_id=invoice.id,
        tenant_id=invoice.tenant_id,
        before=before,
        after={**invoice_audit_values(invoice), "paid_at": invoice.paid_at},
    )
    invoice_shown_changed(invoice=invoice)
    invoices_event_publish(topic="invoice.paid", invoices=[invoice])
    return invoice


@transaction.atomic(durable=True)
def credit_note_issue(*, invoice_id: UUID, amount: Decimal, reason: str) -> CreditNote:
    """A numbered credit note against a finalized or paid invoice, for at most what the
    invoice still owes after earlier notes."""
    if not reason.strip():
        raise BillingInvalid("reason: say why the credit is given", field="reason")
    _, invoice = _locked(invoice_id)
    if invoice.status not in (Invoice.Status.FINALIZED, Invoice.Status.PAID):
        raise InvoiceNotFinalized(
            f"invoice {invoice.number or invoice.id} is {invoice.status}; credit notes are for "
            "finalized invoices"
        )
    if quantize(amount, invoice.currency) != amount or amount <= 0:
        raise BillingInvalid(
            f"amount: {amount} must be more than 0 with at most the currency's decimals",
            field="amount",
        )
    noted = invoice.credit_notes.aggregate(n=Sum("amount"))["n"] or Decimal(0)
    if amount > invoice.total_amount - noted:
        raise BillingInvalid(
            f"amount: {amount} is more than the {invoice.total_amount - noted} {invoice.currency} "
            f"left on invoice {invoice.number}",
            field="amount",
        )
    now = timezone.now()
    (number,) = numbers_allocate(kind="credit_note", year=now.year)
    note = CreditNote(
        invoice=invoice,
        number=number,
        currency=invoice.currency,
        amount=amount,
        reason=reason.strip()[:500],
        issued_at=now,
    )
    note.full_clean(exclude=["invoice"])
    note.save()
    audit_record(
        action="credit_note.issue",
        target_type="credit_note",
        target_id=note.id,
        tenant_id=invoice.tenant_id,
        after={"number": note.number, "invoice": invoice.number, "currency": note.currency,
               "amount": note.amount, "reason": note.reason},
    )  # fmt: skip
    invoice_shown_changed(invoice=invoice)
    return note
