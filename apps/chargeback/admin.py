"""Chargeback in the admin: mapping rules and shared pools are edited here; statements are
read-only, and a draft is issued with the "Issue" action (numbered, then immutable)."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.chargeback.models import CostCenterRule, SharedCostPool, Statement, StatementLine
from apps.chargeback.services.statements import statement_issue
from apps.core.admin import AuditedAdmin
from apps.core.errors import ApplicationError


@admin.register(CostCenterRule)
class CostCenterRuleAdmin(AuditedAdmin):
    list_display = ("field", "value", "cost_center")
    list_filter = ("field", "cost_center")


@admin.register(SharedCostPool)
class SharedCostPoolAdmin(AuditedAdmin):
    list_display = ("code", "name", "amount", "method", "active")
    filter_horizontal = ("targets",)


class StatementLineInline(admin.TabularInline):
    model = StatementLine
    extra = 0
    can_delete = False
    fields = ("position", "kind", "day", "service", "feature", "model", "description", "amount")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Statement)
class StatementAdmin(AuditedAdmin):
    list_display = ("number", "status", "cost_center", "period_start", "total_amount", "currency")
    list_filter = ("status", "period_start")
    inlines = [StatementLineInline]
    actions = ["issue"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in Statement._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Issue the selected draft statements")
    def issue(self, request: HttpRequest, queryset: QuerySet[Statement]) -> None:
        issued = 0
        for statement in queryset.filter(status=Statement.Status.DRAFT):
            try:
                statement_issue(statement_id=statement.id, actor=request.user)
                issued += 1
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
        self.message_user(request, f"{issued} statement(s) issued")
