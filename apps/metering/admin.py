from typing import Any

from django import forms
from django.contrib import admin

from apps.core.admin import AuditedAdmin
from apps.metering.models import IngestBatch, Meter, UsageRollup
from apps.metering.services.meters import MeterFieldInvalid, dimension_check, value_field_check


class MeterForm(forms.ModelForm):
    """The checks catalog_apply makes: the value field suits the aggregation, and filters and
    group-by name well-known attributes or properties keys (they become part of the rollup's
    SQL, as column names)."""

    class Meta:
        model = Meter
        fields = ["code", "name", "event_type", "aggregation", "field", "filters", "group_by"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        filters, group_by = cleaned.get("filters"), cleaned.get("group_by")
        if filters is not None and not isinstance(filters, dict):
            self.add_error("filters", 'Give an object of dimension names and values: {"a": "b"}')
        elif filters:
            self._names("filters", list(filters))
        if group_by is not None and not isinstance(group_by, list):
            self.add_error("group_by", 'Give a list of dimension names: ["model"]')
        elif group_by:
            self._names("group_by", group_by)
        if "aggregation" in cleaned:
            try:
                value_field_check(cleaned["aggregation"], cleaned.get("field") or "")
            except MeterFieldInvalid as exc:
                self.add_error("field", str(exc))
        return cleaned

    def _names(self, name: str, values: list[Any]) -> None:
        for value in values:
            try:
                dimension_check(str(value))
            except MeterFieldInvalid as exc:
                self.add_error(name, str(exc))
                return


@admin.register(Meter)
class MeterAdmin(AuditedAdmin):
    form = MeterForm
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
