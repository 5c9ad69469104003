"""Leakage findings and the scans that record them.

Written only by ``services``. A finding is keyed by (category, tenant, month, subject): a scan
run again updates the same row, never a second one (a unique constraint, not read-then-write).
"""

from django.db import models

from apps.core.models import ExternalModel
from apps.tenants.models import Tenant

AMOUNT_DIGITS = 30
AMOUNT_PLACES = 12  # cost-basis amounts keep the cost rollups' precision
QUANTITY_DIGITS = 38
QUANTITY_PLACES = 12


class Finding(ExternalModel):
    """A leakage or reconciliation problem of one tenant in one calendar month, with the amount
    it puts at risk. ``basis`` says how the amount was priced: ``list_price`` is the tenant's
    own money (its rate card, its invoices, its credits: ``currency`` is the tenant's),
    ``cost`` is what the calls cost the operator (``currency`` is the operator currency)."""

    class Category(models.TextChoices):
        NO_SUBSCRIPTION = "no_subscription"
        UNPRICED = "unpriced"
        LATE_UNBILLED = "late_unbilled"
        QUANTITY_MISMATCH = "quantity_mismatch"
        CREDIT_DRIFT = "credit_drift"
        NEGATIVE_MARGIN = "negative_margin"
        OVER_PLAN_AT_ZERO = "over_plan_at_zero"
        UNCOSTED = "uncosted"

    class Basis(models.TextChoices):
        LIST_PRICE = "list_price"
        COST = "cost"

    class Status(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"
        RESOLVED = "resolved"

    category = models.CharField(max_length=32, choices=Category.choices)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    period_start = models.DateField()  # the first day of the scanned month
    # What the finding is about: an event type, a meter code, a feature, "rollup", or "" for
    # the tenant as a whole. Part of the dedupe key.
    subject = models.CharField(max_length=200, blank=True, default="")
    quantity = models.DecimalField(max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES)
    unit = models.CharField(max_length=32)  # what quantity counts: events, or a meter's units
    amount_at_risk = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    currency = models.CharField(max_length=3)
    basis = models.CharField(max_length=16, choices=Basis.choices)
    evidence = models.JSONField(default=dict, blank=True)  # counts, and up to 20 sample event ids
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    last_scan = models.ForeignKey(
        "LeakageScan", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    status_by = models.CharField(max_length=200, blank=True)  # an API key, a user, or "scan"
    status_reason = models.CharField(max_length=500, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    reopened_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-period_start", "tenant", "category", "subject"]
        constraints = [
            models.UniqueConstraint(
                fields=["category", "tenant", "period_start", "subject"],
                name="finding_once_per_subject",
            ),
        ]
        indexes = [
            models.Index(fields=["period_start", "status"], name="finding_period_status"),
            models.Index(fields=["tenant", "period_start"], name="finding_tenant_period"),
        ]

    def __str__(self) -> str:
        return f"{self.category} {self.subject or '-'} ({self.period_start:%Y-%m})"


class LeakageScan(ExternalModel):
    """One run of the leakage scan over a month (all tenants, or some): when it ran and what it
    found, per category. An audit of the scans; findings point at the last one that saw them."""

    period_start = models.DateField()
    tenant_ids = models.JSONField(null=True, blank=True)  # None: every tenant
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)  # category -> findings present
    opened = models.PositiveIntegerField(default=0)  # new findings
    reopened = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    resolved = models.PositiveIntegerField(default=0)  # no longer found

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"scan {self.period_start:%Y-%m} at {self.started_at:%Y-%m-%d %H:%M}"
