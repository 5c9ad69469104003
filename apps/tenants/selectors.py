"""Read path for tenants. ``scope_tenant_id`` is the caller's tenant, or None for the operator:
a scoped caller sees only its own tenant, and any other id reads as not found."""

from datetime import datetime
from uuid import UUID

from django.db import connection
from django.db.models import QuerySet

from apps.tenants.errors import TenantNotFound
from apps.tenants.models import ApiKey, Membership, Tenant


def tenant_list(*, scope_tenant_id: UUID | None) -> QuerySet[Tenant]:
    """Tenants the caller may see, ordered by external id."""
    tenants = Tenant.objects.all()
    if scope_tenant_id is not None:
        tenants = tenants.filter(id=scope_tenant_id)
    return tenants.order_by("external_id")


def tenant_get(*, external_id: str, scope_tenant_id: UUID | None) -> Tenant:
    """One tenant by external id; a foreign or unknown id raises TenantNotFound (404)."""
    tenant = tenant_list(scope_tenant_id=scope_tenant_id).filter(external_id=external_id).first()
    if tenant is None:
        raise TenantNotFound(f"tenant {external_id!r} not found", field="tenant")
    return tenant


def tenant_actors(*, tenant_id: UUID) -> set[str]:
    """The audit actors that belong to a tenant: its team (``user:<username>``) and its own
    API keys (``api-key:<prefix>``)."""
    users = Membership.objects.filter(tenant_id=tenant_id).values_list("user__username", flat=True)
    keys = ApiKey.objects.filter(tenant_id=tenant_id).values_list("prefix", flat=True)
    return {f"user:{u}" for u in users} | {f"api-key:{k}" for k in keys}


def tenant_external_ids(*, ids: set[UUID]) -> dict[UUID, str]:
    """Tenants' external ids by their ids (for labelling rows that keep only the id)."""
    return dict(Tenant.objects.filter(id__in=ids).values_list("id", "external_id"))


def tenant_ids_by_external_id(*, external_ids: set[str]) -> dict[str, tuple[UUID, datetime | None]]:
    """Map external ids of open tenants to (tenant id, first call time), in one query.

    Ingestion asks this for every batch, so on PostgreSQL it is one fixed statement (parsed once
    per process) rather than a queryset compiled each time."""
    if connection.vendor != "postgresql":
        rows = (
            Tenant.objects.filter(external_id__in=external_ids)
            .exclude(status=Tenant.Status.CLOSED)
            .values_list("external_id", "id", "first_call_at")
        )
        return {ext: (pk, first) for ext, pk, first in rows}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT external_id, id, first_call_at FROM {Tenant._meta.db_table} "
            "WHERE external_id = ANY(%s) AND status <> %s",
            [list(external_ids), Tenant.Status.CLOSED.value],
        )
        return {ext: (pk, first) for ext, pk, first in cursor.fetchall()}
