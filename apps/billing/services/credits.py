"""The credit ledger: grants, what they paid on invoices, refunds when an invoice is voided.

Credits apply at finalization to the invoice's subtotal, from grants effective before the
period end and not expired at it, earliest expiry first, then oldest grant. Grants are locked
(in id order, after the subscription and the invoice) while they are debited; a grant's
remaining amount cannot go below zero (a check constraint), and each debit and refund is a row
of its own, at most once per grant and invoice.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from django.db import transaction
from django.db.models import F, Q, QuerySet

from apps.billing.errors import BillingInvalid
from apps.billing.models import CreditDebit, CreditGrant, Invoice
from apps.core.audit import audit_record
from apps.core.money import quantize

ZERO = Decimal(0)


def credit_grants_for_update() -> QuerySet[CreditGrant]:
    return CreditGrant.objects.select_for_update()


def _usable_at(at: datetime) -> Q:
    return Q(effective_at__lt=at, remaining_amount__gt=0) & (
        Q(expires_at__isnull=True) | Q(expires_at__gt=at)
    )


def _spending_order(grant: CreditGrant) -> tuple:
    # Earliest expiry first (never-expiring last), then the oldest grant.
    return (
        grant.expires_at is None,
        grant.expires_at or grant.effective_at,
        grant.effective_at,
        grant.created_at,
        grant.id,
    )


def credit_grants_locked(*, tenant_ids: Sequence[UUID]) -> dict[UUID, list[CreditGrant]]:
    """Lock every grant with credit left of these tenants (in id order, so that concurrent
    finalizations wait for each other instead of deadlocking) and group them by tenant."""
    grants: dict[UUID, list[CreditGrant]] = {}
    rows = credit_grants_for_update().filter(tenant_id__in=tenant_ids, remaining_amount__gt=0)
    for grant in rows.order_by("id"):
        grants.setdefault(grant.tenant_id, []).append(grant)
    return grants


def credits_available(grants: list[CreditGrant], *, currency: str, at: datetime) -> Decimal:
    return sum(
        (
            g.remaining_amount
            for g in grants
            if g.currency == currency
            and g.effective_at < at
            and (g.expires_at is None or g.expires_at > at)
        ),
        ZERO,
    )


@dataclass(frozen=True)
class Debit:
    grant: CreditGrant
    amount: Decimal


def credits_spend(
    *, grants: list[CreditGrant], invoice: Invoice, amount: Decimal
) -> list[CreditDebit]:
    """Take ``amount`` of credit for ``invoice`` from locked ``grants``, in spending order.
    Updates the grants in memory and returns the debit rows to write; the caller saves both
    in its transaction (``credits_spent_save``)."""
    left = amount
    debits = []
    usable = [
        g
        for g in grants
        if g.currency == invoice.currency
        and g.effective_at < invoice.period_end
        and (g.expires_at is None or g.expires_at > invoice.period_end)
        and g.remaining_amount > 0
    ]
    for grant in sorted(usable, key=_spending_order):
        if left <= 0:
            break
        taken = min(left, grant.remaining_amount)
        grant.remaining_amount -= taken
        left -= taken
        debits.append(
            CreditDebit(grant=grant, invoice=invoice, kind=CreditDebit.Kind.DEBIT, amount=taken)
        )
    if left > 0:
        raise ValueError(f"credits short by {left} for invoice {invoice.id}")
    return debits


def credits_spent_save(*, debits: list[CreditDebit]) -> None:
    """Write debits and the grants' new remaining amounts, each grant decremented in the
    database (never below zero: the check constraint refuses it)."""
    if not debits:
        return
    CreditDebit.objects.bulk_create(debits)
    for debit in debits:
        CreditGrant.objects.filter(id=debit.grant_id).update(
            remaining_amount=F("remaining_amount") - debit.amount
        )


@transaction.atomic
def credits_refund(*, invoice: Invoice) -> Decimal:
    """Give back what ``invoice`` took from each grant, once (a second call refunds nothing:
    the refund row is unique per grant and invoice). Returns the amount given back."""
    debits = list(
        CreditDebit.objects.filter(invoice=invoice, kind=CreditDebit.Kind.DEBIT).order_by(
            "grant_id"
        )
    )
    refunded = set(
        CreditDebit.objects.filter(invoice=invoice, kind=CreditDebit.Kind.REFUND).values_list(
            "grant_id", flat=True
        )
    )
    total = ZERO
    for debit in debits:
        if debit.grant_id in refunded:
            continue
        credit_grants_for_update().filter(id=debit.grant_id).first()  # lock, in id order
        CreditDebit.objects.create(
            grant_id=debit.grant_id,
            invoice=invoice,
            kind=CreditDebit.Kind.REFUND,
            amount=debit.amount,
        )
        CreditGrant.objects.filter(id=debit.grant_id).update(
            remaining_amount=F("remaining_amount") + debit.amount
        )
        total += debit.amount
    return total


@transaction.atomic
def credit_grant_issue(
    *,
    tenant_id: UUID,
    currency: str,
    amount: Decimal,
    effective_at: datetime,
    expires_at: datetime | None,
    reason: str,
    purchase_invoice: Invoice | None = None,
    pack_id: UUID | None = None,
) -> CreditGrant:
    """Add credits to a tenant's ledger: a positive amount in the currency's minor unit."""
    if amount <= 0 or quantize(amount, currency) != amount:
        raise BillingInvalid(
            f"amount: {amount} must be more than 0 with at most {currency}'s decimals",
            field="amount",
        )
    grant = CreditGrant(
        tenant_id=tenant_id,
        currency=currency,
        amount=amount,
        remaining_amount=amount,
        effective_at=effective_at,
        expires_at=expires_at,
        reason=reason,
        purchase_invoice=purchase_invoice,
        pack_id=pack_id,
    )
    grant.full_clean(exclude=["tenant", "purchase_invoice", "pack"])
    grant.save()
    audit_record(
        action="credit_grant.issue",
        target_type="credit_grant",
        target_id=grant.id,
        tenant_id=tenant_id,
        after={"currency": currency, "amount": amount, "effective_at": effective_at,
               "expires_at": expires_at, "reason": reason,
               "purchase_invoice": purchase_invoice.id if purchase_invoice else None,
               "pack": pack_id},
    )  # fmt: skip
    return grant
