from django.contrib import admin

from apps.core.admin import AuditedAdmin
from apps.metering.models import IngestBatch, Meter, UsageRollup


@admin.register(Meter)
class MeterAdmin(AuditedAdmin):
    list_display = ["code", "event_type", "aggregation", "field"]
    search_fields = ["code", "event_type"]


@admin.register(IngestBatch)
class IngestBatchAdmin(AuditedAdmin):
    """Intake history is append-only: visible, never edited."""

    list_display = [
        "id",
        "received_at",
        "api_key_prefix",
        "backfill",
        "accepted",
        "duplicates",
        "conflicts",
        "rejected",
    ]
    list_filter = ["backfill"]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(UsageRollup)
class UsageRollupAdmin(IngestBatchAdmin):
    list_display = ["tenant", "hour", "event_type", "endpoint", "model", "events", "cost"]
    list_filter = ["event_type"]
