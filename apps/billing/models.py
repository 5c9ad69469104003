"""Subscriptions, invoices and their lines and numbers, the credit ledger, credit notes.

Written only by ``services``. A finalized invoice never changes (corrections are a void and a
reissue, or a credit note); credit history is append-only (``CreditDebit``); numbers come from
a locked counter row, allocated at finalization, so they are gapless per year.
"""

from django.db import models
from django.db.models import F, Q

from apps.catalog.models import Charge, CreditPack, Plan, RateCardVersion
from apps.core.models import BaseModel, ExternalModel
from apps.tenants.models import Tenant

AMOUNT_DIGITS = 20
AMOUNT_PLACES = 4  # every currency's minor unit fits; amounts are rounded before saving
QUANTITY_DIGITS = 38
QUANTITY_PLACES = 12
PRICE_DIGITS = 30
PRICE_PLACES = 12


def _amount(default: int | None = None) -> models.DecimalField:
    if default is None:
        return models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    return models.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, default=default
    )


class Subscription(ExternalModel):
    """A tenant on a plan from ``started_at``. Billing periods are calendar months (or years)
    in the tenant's timezone, half-open; the first one starts at ``started_at``. A plan change
    takes effect at the start of the next period (``PlanChange``); ``ends_at`` is when a
    cancellation ends it (a period end, or the moment of an immediate cancellation)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    started_at = models.DateTimeField()
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    # The end of the last period whose invoice is finalized: where billing runs resume.
    billed_through = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tenant", "started_at"]
        indexes = [models.Index(fields=["billed_through"], name="subscription_billed_through")]

    def __str__(self) -> str:
        return f"{self.tenant} on {self.plan}"


class PlanChange(BaseModel):
    """A change of plan from ``effective_at`` (a period start) on. Append-only: a later change
    supersedes an earlier one from its own date."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="plan_changes"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    effective_at = models.DateTimeField()

    class Meta:
        ordering = ["subscription", "effective_at", "id"]


class Invoice(ExternalModel):
    """One subscription period's bill, or one credit-pack purchase. A draft is refreshed until
    it is finalized; from then on amounts and lines never change, only the status moves on
    (paid, or void; a void invoice keeps its number)."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        FINALIZED = "finalized"
        PAID = "paid"
        VOID = "void"

    class Kind(models.TextChoices):
        SUBSCRIPTION = "subscription"
        CREDIT_PURCHASE = "credit_purchase"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, null=True, blank=True, related_name="invoices"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SUBSCRIPTION)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    number = models.CharField(max_length=32, null=True, blank=True, unique=True)
    currency = models.CharField(max_length=3)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    plan = models.ForeignKey(
        Plan, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    rate_card_version = models.ForeignKey(
        RateCardVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    subtotal_amount = _amount(default=0)
    credits_applied_amount = _amount(default=0)
    tax_amount = _amount(default=0)
    total_amount = _amount(default=0)
    tax_rate = models.DecimalField(max_digits=7, decimal_places=6, default=0)
    refreshed_at = models.DateTimeField(null=True, blank=True)  # drafts: last priced
    issued_at = models.DateTimeField(null=True, blank=True)  # finalized at
    due_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=500, blank=True)
    reissue_of = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reissues"
    )
    # What the PDF shows, hashed: the PDF is rendered again only when this changes.
    content_hash = models.CharField(max_length=64, blank=True)
    pdf_file = models.CharField(max_length=300, blank=True)  # under MEDIA_ROOT
    pdf_hash = models.CharField(max_length=64, blank=True)  # content_hash the file shows

    class Meta:
        ordering = ["-period_start", "tenant"]
        constraints = [
            # One invoice per subscription and period, whatever runs at once; a void one
            # leaves room for its reissue.
            models.UniqueConstraint(
                fields=["subscription", "period_start"],
                condition=Q(kind="subscription") & ~Q(status="void"),
                name="invoice_one_per_subscription_period",
            ),
            models.CheckConstraint(
                condition=Q(status="draft", number__isnull=True)
                | Q(status__in=["finalized", "paid"], number__isnull=False)
                | Q(status="void"),
                name="invoice_number_iff_issued",
            ),
            models.CheckConstraint(
                condition=Q(credits_applied_amount__gte=0), name="invoice_credits_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(period_end__gte=F("period_start")), name="invoice_period_ordered"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "status"], name="invoice_tenant_status"),
            models.Index(fields=["status", "period_end"], name="invoice_status_period_end"),
        ]

    def __str__(self) -> str:
        return self.number or f"draft {self.id}"


class InvoiceLine(BaseModel):
    """One priced line. ``amount`` is rounded once to the currency's minor unit; quantities
    and unit prices keep full precision; ``tiers`` keep the exact amount of each tier."""

    class Kind(models.TextChoices):
        BASE_FEE = "base_fee"
        USAGE = "usage"
        MINIMUM = "minimum"
        ADJUSTMENT = "adjustment"
        CREDIT_PACK = "credit_pack"

    # Indexed by (invoice, position), which the unique constraint below creates.
    invoice = models.ForeignKey(
        Invoice, on_delete=models.CASCADE, db_index=False, related_name="lines"
    )
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    key = models.CharField(max_length=64)  # which charge or fee, stable within a rate card
    # SET_NULL: only an unlocked version's charges can be replaced, and only drafts point at
    # those (their lines are rebuilt at the next refresh); a finalized invoice's version is
    # locked, so its charges stay.
    charge = models.ForeignKey(
        Charge, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    description = models.CharField(max_length=300)
    meter_code = models.CharField(max_length=64, blank=True)
    quantity = models.DecimalField(
        max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES, null=True, blank=True
    )
    unit_price = models.DecimalField(
        max_digits=PRICE_DIGITS, decimal_places=PRICE_PLACES, null=True, blank=True
    )
    amount = _amount()
    tiers = models.JSONField(default=list, blank=True)
    dimensions = models.JSONField(default=dict, blank=True)
    # Adjustment lines: the finalized period whose late usage they bill.
    adjusts_period_start = models.DateTimeField(null=True, blank=True)
    adjusts_period_end = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoice_line_position")
        ]


class NumberCounter(models.Model):
    """The last number issued in a series (``invoice:2026``), locked while one is allocated, so
    numbers are gapless: one that is rolled back is never issued."""

    series = models.CharField(max_length=32, primary_key=True)
    last = models.PositiveIntegerField(default=0)


class CreditGrant(ExternalModel):
    """Prepaid credits a tenant can spend on invoices, from ``effective_at`` until
    ``expires_at``. ``remaining_amount`` is kept under the grant's row lock and can never go
    below zero (a check constraint); every movement is a ``CreditDebit`` row, so the history
    stays complete and ``remaining = amount - sum(debits)`` always holds."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="credit_grants")
    currency = models.CharField(max_length=3)
    amount = _amount()
    remaining_amount = _amount()
    effective_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    pack = models.ForeignKey(
        CreditPack, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    purchase_invoice = models.OneToOneField(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="credit_grant"
    )
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["tenant", "effective_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining_amount__gte=0) & Q(remaining_amount__lte=F("amount")),
                name="credit_grant_remaining_within_amount",
            ),
        ]


class CreditDebit(BaseModel):
    """Append-only: credits one grant gave to one invoice (``debit``), or gave back when that
    invoice was voided (``refund``). Each happens at most once per grant and invoice."""

    class Kind(models.TextChoices):
        DEBIT = "debit"
        REFUND = "refund"

    grant = models.ForeignKey(CreditGrant, on_delete=models.PROTECT, related_name="debits")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_debits")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    amount = _amount()  # positive for both: the kind says which way

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["grant", "invoice", "kind"], name="credit_debit_once_per_invoice"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_debit_positive"),
        ]


class CreditNote(ExternalModel):
    """A numbered correction of a finalized invoice: reduces what the tenant owes by
    ``amount`` (tax included), never more than the invoice's total less earlier notes."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    number = models.CharField(max_length=32, unique=True)
    currency = models.CharField(max_length=3)
    amount = _amount()
    reason = models.CharField(max_length=500)
    issued_at = models.DateTimeField()

    class Meta:
        ordering = ["issued_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_note_positive")
        ]


class IdempotentRequest(BaseModel):
    """The first answer to a request sent with an ``Idempotency-Key``: the same key and body
    get it again; the same key with another body is refused."""

    scope = models.CharField(max_length=100)  # who and what: tenant and endpoint
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotent_request_key")
        ]
