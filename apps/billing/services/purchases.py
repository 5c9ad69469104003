"""Buying a credit pack: a finalized purchase invoice for the pack's price and a credit grant of
its credits, answered once per ``Idempotency-Key``."""

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.billing.errors import BillingInvalid, IdempotencyKeyReused
from apps.billing.models import IdempotentRequest, Invoice, InvoiceLine
from apps.billing.services.credits import credit_grant_issue
from apps.billing.services.events import invoices_event_publish
from apps.billing.services.invoices import content_hash, invoice_audit_values
from apps.billing.services.numbering import numbers_allocate
from apps.catalog.models import CreditPack
from apps.core.audit import audit_record
from apps.core.jobs import job_enqueue_on_commit
from apps.rating.invoices import ExtraLine, InvoiceInput, LineKind, invoice_price
from apps.tenants.models import Tenant


def idempotent(
    *, scope: str, key: str, request: dict[str, Any], work: Callable[[], tuple[int, Any]]
) -> tuple[int, Any]:
    """Answer a request once per (scope, key): the first answer is stored with ``work``'s
    writes, in one transaction, and returned again for the same request body; the same key with
    another body raises IdempotencyKeyReused (422). Two concurrent first sends: the unique key
    lets one through, the other gets its answer."""
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    stored = IdempotentRequest.objects.filter(scope=scope, key=key).first()
    if stored is None:
        try:
            with transaction.atomic():
                status, response = work()
                IdempotentRequest.objects.create(
                    scope=scope,
                    key=key,
                    request_hash=digest,
                    status_code=status,
                    response=response,
                )
                return status, response
        except IntegrityError:
            stored = IdempotentRequest.objects.filter(scope=scope, key=key).first()
            if stored is None:
                raise
    if stored.request_hash != digest:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was used for another request; use a new key"
        )
    return stored.status_code, stored.response


@transaction.atomic
def credit_pack_purchase(*, tenant: Tenant, pack: CreditPack) -> Invoice:
    """Issue the purchase: a finalized invoice (numbered, taxed at the tenant's rate) for the
    pack's price, and a grant of its credits from now until it expires."""
    if not pack.active:
        raise BillingInvalid(f"pack: {pack.code!r} is no longer sold", field="pack")
    if pack.currency != tenant.currency:
        raise BillingInvalid(
            f"pack: {pack.code!r} is sold in {pack.currency}; tenant {tenant.external_id!r} "
            f"pays in {tenant.currency}",
            field="pack",
        )
    now = timezone.now()
    priced = invoice_price(
        InvoiceInput(
            currency=pack.currency,
            extra_lines=(
                ExtraLine(
                    LineKind.CREDIT_PACK,
                    f"pack:{pack.code}",
                    pack.name,
                    Decimal(1),
                    pack.price_amount,
                ),
            ),
            tax_rate=tenant.tax_rate,
        )
    )
    (number,) = numbers_allocate(kind="invoice", year=now.year)
    invoice = Invoice.objects.create(
        tenant=tenant,
        kind=Invoice.Kind.CREDIT_PURCHASE,
        status=Invoice.Status.FINALIZED,
        number=number,
        currency=pack.currency,
        period_start=now,
        period_end=now,
        subtotal_amount=priced.subtotal,
        credits_applied_amount=priced.credits_applied,
        tax_amount=priced.tax,
        total_amount=priced.total,
        tax_rate=tenant.tax_rate,
        issued_at=now,
        due_at=now + timedelta(days=settings.PERCALL_INVOICE_DUE_DAYS),
    )
    (line,) = priced.lines
    row = InvoiceLine.objects.create(
        invoice=invoice,
        position=0,
        kind=InvoiceLine.Kind.CREDIT_PACK,
        key=line.key[:64],
        description=f"{pack.name}: {pack.credits_amount} {pack.currency} of credits",
        quantity=line.quantity,
        unit_price=line.unit_price,
        amount=line.amount,
    )
    invoice.content_hash = content_hash(invoice, [row])
    invoice.save(update_fields=["content_hash"])
    audit_record(
        action="invoice.finalize",
        target_type="invoice",
        target_id=invoice.id,
        tenant_id=tenant.id,
        after={**invoice_audit_values(invoice), "pack": pack.code},
    )
    expires = now + timedelta(days=pack.expires_after_days) if pack.expires_after_days else None
    credit_grant_issue(
        tenant_id=tenant.id,
        currency=pack.currency,
        amount=pack.credits_amount,
        effective_at=now,
        expires_at=expires,
        reason=f"credit pack {pack.code}",
        purchase_invoice=invoice,
        pack_id=pack.id,
    )
    invoices_event_publish(topic="invoice.finalized", invoices=[invoice])
    job_enqueue_on_commit(name="billing.invoice_render_pdf", kwargs={"invoice_id": str(invoice.id)})
    return invoice
