"""Who is billed (tenants), who is charged back (cost centers), and who may call the API."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.core.models import BaseModel, ExternalModel


class Tenant(ExternalModel):
    """A partner or customer account that is billed, in its own currency and timezone."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"
        CLOSED = "closed"

    external_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)  # ISO 4217
    timezone = models.CharField(max_length=64, default="UTC")  # IANA
    billing_email = models.EmailField(blank=True)
    # A fraction: 0.2 is 20 %. Bounded to [0, 1].
    tax_rate = models.DecimalField(
        max_digits=7,
        decimal_places=6,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    registered_at = models.DateTimeField()
    # Set once by ingestion, from the earliest accepted event's timestamp.
    first_call_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["external_id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"


class CostCenter(BaseModel):
    """An internal team or department that receives showback and chargeback statements."""

    code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    gl_account = models.CharField(max_length=64, blank=True)  # the ledger account it is charged to
    # What the cost center may spend a month, in the operator currency; statements show the
    # variance against it.
    monthly_budget_amount = models.DecimalField(
        max_digits=20, decimal_places=4, null=True, blank=True
    )

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Membership(BaseModel):
    """A person's access to one tenant's portal, with a role."""

    class Role(models.TextChoices):
        OWNER = "owner"
        BILLING = "billing"
        VIEWER = "viewer"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="membership_user_tenant_uniq")
        ]


class ApiKey(BaseModel):
    """An API credential. Only a public prefix and a SHA-256 of the whole key are stored; the
    plaintext is shown once, at creation. A key is operator-wide or bound to one tenant."""

    class Scope(models.TextChoices):
        INGEST = "ingest"
        READ = "read"
        ADMIN = "admin"

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)  # hex SHA-256 of the full plaintext key
    scopes = models.JSONField(default=list)
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def has_scope(self, scope: str) -> bool:
        # admin implies read and ingest: an operator's admin key can do everything.
        return scope in self.scopes or self.Scope.ADMIN in self.scopes
