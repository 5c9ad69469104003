"""Write path for tenants and cost centers."""

from datetime import datetime
from decimal import Decimal, InvalidOperation
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.audit import audit_record
from apps.core.money import currency_is_known
from apps.tenants.errors import TenantExists, TenantInvalid
from apps.tenants.models import CostCenter, Tenant


def _timezone_check(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TenantInvalid(
            f"timezone: {name!r} is not an IANA timezone (e.g. 'Europe/Paris')", field="timezone"
        ) from exc


def _tax_rate_parse(value: Decimal | str) -> Decimal:
    try:
        rate = Decimal(str(value))
    except InvalidOperation as exc:
        raise TenantInvalid(f"tax_rate: {value!r} is not a decimal", field="tax_rate") from exc
    if not rate.is_finite() or rate < 0 or rate > 1:
        raise TenantInvalid(
            f"tax_rate: {value!r} must be a fraction between 0 and 1 (0.2 is 20 %)",
            field="tax_rate",
        )
    return rate


@transaction.atomic
def tenant_create(
    *,
    external_id: str,
    name: str,
    currency: str,
    timezone_name: str = "UTC",
    billing_email: str = "",
    tax_rate: Decimal | str = Decimal("0"),
    registered_at: datetime | None = None,
) -> Tenant:
    """Create a tenant. Currency must be ISO 4217, timezone IANA, tax rate a fraction in [0, 1]."""
    if not currency_is_known(currency):
        raise TenantInvalid(
            f"currency: {currency!r} is not an ISO 4217 code (e.g. 'USD')", field="currency"
        )
    _timezone_check(timezone_name)
    tenant = Tenant(
        external_id=external_id,
        name=name,
        currency=currency,
        timezone=timezone_name,
        billing_email=billing_email,
        tax_rate=_tax_rate_parse(tax_rate),
        registered_at=registered_at or timezone.now(),
    )
    try:
        tenant.full_clean(validate_unique=False)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise TenantInvalid(f"{field}: {' '.join(messages)}", field=field) from exc
    try:
        with transaction.atomic():
            tenant.save(force_insert=True)
            audit_record(
                action="tenant.create",
                target_type="tenant",
                target_id=tenant.external_id,
                tenant_id=tenant.id,
                after={"name": name, "currency": currency, "timezone": timezone_name,
                       "billing_email": billing_email, "tax_rate": tenant.tax_rate},
            )  # fmt: skip
    except IntegrityError as exc:
        raise TenantExists(
            f"external_id: a tenant {external_id!r} already exists", field="external_id"
        ) from exc
    return tenant


@transaction.atomic
def cost_center_create(*, code: str, name: str, parent_code: str | None = None) -> CostCenter:
    """Create a cost center, optionally under a parent (by code)."""
    parent = CostCenter.objects.get(code=parent_code) if parent_code else None
    center = CostCenter(code=code, name=name, parent=parent)
    center.full_clean()
    center.save()
    return center


def tenant_first_calls_record(*, first_calls: dict[UUID, datetime]) -> None:
    """Record each tenant's first metered call, or an earlier one (a late or backfilled event).
    Conditional UPDATEs, so concurrent batches need no lock and the earliest always wins; in
    tenant id order, so that two batches never wait on each other's rows in a cycle."""
    for tenant_id, at in sorted(first_calls.items()):
        Tenant.objects.filter(id=tenant_id).filter(
            Q(first_call_at__isnull=True) | Q(first_call_at__gt=at)
        ).update(first_call_at=at)
