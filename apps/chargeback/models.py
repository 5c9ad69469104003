"""Chargeback: which cost center each call's cost belongs to, shared-cost pools, and the
monthly statements finance issues.

A statement is drafted from the cost rollups, then issued by a finance user: an issued
statement is numbered (``SB-2026-10-0007``) and never changes; a correction is a new statement
that references the one it corrects. Periods are UTC calendar months.
"""

from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Coalesce

from apps.core.models import BaseModel, ExternalModel
from apps.tenants.models import CostCenter

AMOUNT_DIGITS = 20
AMOUNT_PLACES = 4
EXACT_DIGITS = 38
EXACT_PLACES = 12


class CostCenterRule(BaseModel):
    """Maps calls to a cost center by the value of one of their dimensions. An event whose
    ``team`` is a cost center's code goes there first; then rules by endpoint, feature and
    service, the most specific first. Calls no rule maps go to the Unallocated statement."""

    class Field(models.TextChoices):
        ENDPOINT = "endpoint"
        FEATURE = "feature"
        SERVICE = "service"

    field = models.CharField(max_length=16, choices=Field.choices)
    value = models.CharField(max_length=200)
    cost_center = models.ForeignKey(CostCenter, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["field", "value"]
        constraints = [
            models.UniqueConstraint(fields=["field", "value"], name="cost_center_rule_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.field}={self.value} -> {self.cost_center.code}"


class SharedCostPool(BaseModel):
    """A shared cost of ``amount`` a month (operator currency), allocated to cost centers:
    evenly, in proportion to their requests, direct cost or tokens, or by fixed percentages
    (``shares``: cost center code to percent, summing to 100). ``targets`` narrows who
    shares it (empty: every cost center with direct cost that month; for ``even``, every one
    with calls). Parts are split by largest remainder, so they sum exactly to the pool."""

    class Method(models.TextChoices):
        EVEN = "even"
        REQUESTS = "requests"
        DIRECT_COST = "direct_cost"
        TOKENS = "tokens"
        FIXED = "fixed"

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    method = models.CharField(max_length=16, choices=Method.choices)
    shares = models.JSONField(default=dict, blank=True)
    targets = models.ManyToManyField(CostCenter, blank=True, related_name="+")
    starts_on = models.DateField(null=True, blank=True)  # first month it applies, if not always
    ends_on = models.DateField(null=True, blank=True)  # exclusive
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        """Amounts at least 0; a fixed pool's shares are numbers of at least 0 for cost center
        codes that exist, summing to 100."""
        if self.amount is not None and self.amount < 0:
            raise ValidationError({"amount": f"{self.amount} must be at least 0"})
        if not isinstance(self.shares, dict):
            raise ValidationError({"shares": "must be a mapping of cost center code to percent"})
        if self.method != self.Method.FIXED:
            if self.shares:
                raise ValidationError(
                    {"shares": f"only a fixed pool has shares, not {self.method}"}
                )
            return
        if not self.shares:
            raise ValidationError({"shares": "a fixed pool needs shares (code: percent)"})
        known = set(
            CostCenter.objects.filter(code__in=list(self.shares)).values_list("code", flat=True)
        )
        total = Decimal(0)
        for code, percent in self.shares.items():
            if code not in known:
                raise ValidationError({"shares": f"shares.{code}: no cost center has this code"})
            try:
                value = Decimal(str(percent))
            except InvalidOperation:
                raise ValidationError(
                    {"shares": f"shares.{code}: {percent!r} is not a number"}
                ) from None
            if not value.is_finite() or value < 0:
                raise ValidationError({"shares": f"shares.{code}: {percent} must be at least 0"})
            total += value
        if total != 100:
            raise ValidationError({"shares": f"the shares sum to {total}, not 100"})


class Statement(ExternalModel):
    """A cost center's showback/chargeback for one UTC month (``cost_center`` None: the
    Unallocated statement, for cost no rule maps). Amounts are in the operator currency,
    each line rounded once; every total is a sum of rounded lines.

    Immutable once issued: lines and amounts never change, the number is set, and a
    correction is a new statement with ``corrects`` pointing here."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        ISSUED = "issued"

    cost_center = models.ForeignKey(
        CostCenter, null=True, blank=True, on_delete=models.PROTECT, related_name="statements"
    )
    period_start = models.DateField()
    period_end = models.DateField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
    number = models.CharField(max_length=32, null=True, blank=True, unique=True)
    currency = models.CharField(max_length=3)
    direct_amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    allocated_amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    total_amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    budget_amount = models.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, null=True, blank=True
    )
    variance_amount = models.DecimalField(  # budget - total: negative is over budget
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, null=True, blank=True
    )
    calls = models.BigIntegerField(default=0)
    uncosted_calls = models.BigIntegerField(default=0)
    drivers = models.JSONField(default=list, blank=True)  # the top cost drivers
    corrects = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="corrections"
    )
    correction_reason = models.CharField(max_length=500, blank=True)
    drafted_at = models.DateTimeField()
    issued_at = models.DateTimeField(null=True, blank=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    pdf_file = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-period_start", "cost_center__code"]
        constraints = [
            # One open draft per cost center and month; the Unallocated one included.
            # Coalesced, since NULLs are distinct in a unique index (and SQLite cannot say
            # otherwise): 0 stands for the Unallocated statement, which no cost center id is.
            models.UniqueConstraint(
                Coalesce("cost_center", Value(0)),
                "period_start",
                condition=Q(status="draft"),
                name="statement_one_draft",
            ),
        ]

    def __str__(self) -> str:
        return self.number or f"draft {self.period_start:%Y-%m}"


class StatementLine(BaseModel):
    """One line of a statement. ``direct`` lines are the cost of one day of one service,
    feature, provider and model; ``allocated`` lines a shared pool's part. ``amount`` is the
    line's share of the rounded total by largest remainder over ``exact_amount``, so every
    breakdown (by service, by day, ...) sums to the statement to the cent."""

    class Kind(models.TextChoices):
        DIRECT = "direct"
        ALLOCATED = "allocated"

    statement = models.ForeignKey(Statement, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    day = models.DateField(null=True, blank=True)
    service = models.CharField(max_length=200, blank=True)
    feature = models.CharField(max_length=200, blank=True)
    workflow = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=128, blank=True)
    pool = models.ForeignKey(
        SharedCostPool, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    method = models.CharField(max_length=16, blank=True)
    description = models.CharField(max_length=300)
    calls = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    exact_amount = models.DecimalField(max_digits=EXACT_DIGITS, decimal_places=EXACT_PLACES)
    amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)

    class Meta:
        ordering = ["statement", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["statement", "position"], name="statement_line_position"
            )
        ]
