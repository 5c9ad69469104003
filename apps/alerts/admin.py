"""Alerts in the admin: everything visible, nothing editable.

Budgets change only through their services (validation, re-evaluation, the limits cache);
periods, alerts and emails are written by evaluations and the sender. The admin adds no
write path around them.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.alerts.models import (
    Anomaly,
    Budget,
    BudgetAlert,
    BudgetPeriod,
    CreditAlert,
    EmailNotification,
    ForecastSnapshot,
)


class ReadOnly:
    """Nothing added, changed or deleted here: the services are the only write path."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Budget)
class BudgetAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("name", "scope", "tenant", "cost_center", "scope_value", "measure", "amount",
                    "currency", "period", "action", "active")  # fmt: skip
    list_filter = ("scope", "measure", "action", "active")
    search_fields = ("name", "scope_value", "tenant__external_id")


@admin.register(BudgetPeriod)
class BudgetPeriodAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("budget", "period_start", "period_end", "measured", "percent", "forecast",
                    "over_limit", "evaluated_at")  # fmt: skip
    list_filter = ("over_limit",)
    list_select_related = ("budget",)


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("budget", "kind", "threshold", "period_start", "percent", "fired_at")
    list_filter = ("kind",)
    list_select_related = ("budget",)


@admin.register(CreditAlert)
class CreditAlertAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("grant", "threshold", "consumed_percent", "remaining_amount",
                    "projected_depletion_on", "fired_at")  # fmt: skip


@admin.register(EmailNotification)
class EmailNotificationAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("topic", "to", "subject", "sent_at", "attempts", "error")
    list_filter = ("topic",)
    search_fields = ("to", "subject")


# Anomalies change status through anomaly_acknowledge / anomaly_resolve (the API); snapshots
# are written by forecasts_snapshot only.
@admin.register(Anomaly)
class AnomalyAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("hour", "tenant", "scope", "scope_value", "kind", "observed", "score",
                    "baseline_median", "cause_dimension", "cause_value", "status")  # fmt: skip
    list_filter = ("kind", "status", "scope", "baseline_method")
    list_select_related = ("tenant",)
    search_fields = ("tenant__external_id", "scope_value", "cause_value")


@admin.register(ForecastSnapshot)
class ForecastSnapshotAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("period_start", "made_on", "scope", "scope_key", "measure", "currency",
                    "actual_to_date", "forecast", "lower", "upper", "method", "actual")  # fmt: skip
    list_filter = ("measure", "scope", "method", "period_start")
    search_fields = ("scope_key",)
