"""Findings in the admin: read-only figures and evidence; the status is worked through the API
(or the finance console), so every change says who and why."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.assurance.models import Finding, LeakageScan
from apps.core.admin import AuditedAdmin


@admin.register(Finding)
class FindingAdmin(AuditedAdmin):
    list_display = (
        "category",
        "tenant",
        "period_start",
        "subject",
        "quantity",
        "amount_at_risk",
        "currency",
        "basis",
        "status",
        "last_seen_at",
    )
    list_filter = ("category", "status", "basis", "period_start")
    search_fields = ("tenant__external_id", "tenant__name", "subject")
    readonly_fields = [f.name for f in Finding._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LeakageScan)
class LeakageScanAdmin(AuditedAdmin):
    list_display = ("period_start", "started_at", "finished_at", "opened", "reopened", "resolved")
    readonly_fields = [f.name for f in LeakageScan._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
