from django.contrib import admin

from apps.core.admin import AuditedAdmin
from apps.tenants.models import ApiKey, CostCenter, Membership, Tenant


@admin.register(Tenant)
class TenantAdmin(AuditedAdmin):
    list_display = ["external_id", "name", "currency", "timezone", "status", "first_call_at"]
    list_filter = ["status", "currency"]
    search_fields = ["external_id", "name", "billing_email"]


@admin.register(CostCenter)
class CostCenterAdmin(AuditedAdmin):
    list_display = ["code", "name", "parent"]
    search_fields = ["code", "name"]


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "tenant", "role"]


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin):
    """Keys are created with ``create_api_key`` (the plaintext is shown once); here they can be
    inspected and revoked, never read back."""

    list_display = ["name", "prefix", "tenant", "scopes", "revoked_at", "last_used_at"]
    readonly_fields = ["prefix", "key_hash", "scopes", "tenant", "last_used_at", "name"]

    def has_add_permission(self, request: object) -> bool:
        return False
