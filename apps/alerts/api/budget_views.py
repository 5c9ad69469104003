"""Budgets and the limits check over the API.

An operator-wide key manages every budget; a tenant-bound key only budgets narrowed to its own
tenant (the tenant is forced to its own, never a cost center's), and another tenant's budget
reads as not found. Reads need the read scope, changes the admin scope. The limits check
answers any key of the tenant (or the operator) with the read or ingest scope: gateways
hold ingest keys.
"""

from datetime import date
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.alerts.errors import BudgetInvalid
from apps.alerts.models import Budget, BudgetAlert, BudgetPeriod
from apps.alerts.selectors import (
    budget_alert_list,
    budget_get,
    budget_list,
    budget_periods_latest,
)
from apps.alerts.services.budgets.manage import (
    budget_create,
    budget_deactivate,
    budget_update,
)
from apps.alerts.services.limits import limits_get, tenant_not_found
from apps.core.api.schema import results_of
from apps.core.api.serializers import NoInput, StrictInput
from apps.metering.models import Meter
from apps.tenants.api.authentication import AdminScope, ApiPrincipal, ReadScope, principal_of
from apps.tenants.models import ApiKey, CostCenter
from apps.tenants.selectors import tenant_get


class _ReadOrAdmin(permissions.BasePermission):
    """Read scope to look, admin scope to change."""

    message = "this API key lacks the required scope"

    def has_permission(self, request: Request, view: Any) -> bool:
        checker = ReadScope() if request.method in permissions.SAFE_METHODS else AdminScope()
        allowed = checker.has_permission(request, view)
        self.message = checker.message
        return allowed


class _GatewayScope(permissions.BasePermission):
    message = "the limits check needs a key with the 'read' or 'ingest' scope"

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request.user
        return isinstance(principal, ApiPrincipal) and (
            principal.api_key.has_scope(ApiKey.Scope.READ)
            or principal.api_key.has_scope(ApiKey.Scope.INGEST)
        )


class BudgetIn(StrictInput):
    # Plain fields: the service checks values and names the field in its error.
    name = serializers.CharField(max_length=200)
    scope = serializers.CharField()
    measure = serializers.CharField()
    amount = serializers.CharField()
    tenant = serializers.CharField(required=False)
    cost_center = serializers.CharField(required=False)
    scope_value = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=200
    )
    meter = serializers.CharField(required=False)
    currency = serializers.CharField(required=False, default="", allow_blank=True, max_length=3)
    period = serializers.CharField(required=False, default=Budget.Period.MONTHLY)
    period_start = serializers.DateField(required=False)
    period_end = serializers.DateField(required=False)
    thresholds = serializers.JSONField(required=False)
    action = serializers.CharField(required=False, default=Budget.Action.NOTIFY)
    notify_emails = serializers.ListField(
        child=serializers.CharField(), required=False, default=list
    )


class BudgetPatchIn(StrictInput):
    name = serializers.CharField(max_length=200, required=False)
    amount = serializers.CharField(required=False)
    thresholds = serializers.JSONField(required=False)
    action = serializers.CharField(required=False)
    notify_emails = serializers.ListField(child=serializers.CharField(), required=False)

    def unexpected_message(self, name: str) -> str:
        if name in BudgetIn._declared_fields:
            return (
                "cannot be changed (it defines what is measured); create a new budget and "
                "deactivate this one"
            )
        return super().unexpected_message(name)


class BudgetStatusOut(serializers.Serializer):
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    measured = serializers.DecimalField(max_digits=38, decimal_places=12)
    percent = serializers.DecimalField(max_digits=12, decimal_places=2)
    forecast = serializers.DecimalField(max_digits=38, decimal_places=12, allow_null=True)
    forecast_lower = serializers.DecimalField(max_digits=38, decimal_places=12, allow_null=True)
    forecast_upper = serializers.DecimalField(max_digits=38, decimal_places=12, allow_null=True)
    crossed = serializers.ListField(child=serializers.IntegerField())
    over_limit = serializers.BooleanField()
    drivers = serializers.ListField(child=serializers.DictField())
    evaluated_at = serializers.DateTimeField()


class BudgetOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    scope = serializers.CharField()
    tenant = serializers.CharField(source="tenant.external_id", allow_null=True, default=None)
    cost_center = serializers.CharField(source="cost_center.code", allow_null=True, default=None)
    scope_value = serializers.CharField()
    measure = serializers.CharField()
    meter = serializers.CharField(source="meter.code", allow_null=True, default=None)
    amount = serializers.DecimalField(max_digits=38, decimal_places=12)
    currency = serializers.CharField()
    period = serializers.CharField()
    period_start = serializers.DateField(allow_null=True)
    period_end = serializers.DateField(allow_null=True)
    thresholds = serializers.ListField(child=serializers.IntegerField())
    action = serializers.CharField()
    notify_emails = serializers.ListField(child=serializers.CharField())
    active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    status = BudgetStatusOut(allow_null=True, help_text="the latest evaluated period")


class BudgetAlertOut(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.CharField()
    threshold = serializers.IntegerField()
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    measured = serializers.DecimalField(max_digits=38, decimal_places=12)
    percent = serializers.DecimalField(max_digits=12, decimal_places=2)
    forecast = serializers.DecimalField(max_digits=38, decimal_places=12, allow_null=True)
    drivers = serializers.ListField(child=serializers.DictField())
    fired_at = serializers.DateTimeField()


class LimitOut(serializers.Serializer):
    budget = serializers.UUIDField()
    name = serializers.CharField()
    scope = serializers.CharField()
    scope_value = serializers.CharField()
    action = serializers.CharField()
    percent = serializers.CharField()


class LimitsOut(serializers.Serializer):
    tenant = serializers.CharField()
    decision = serializers.ChoiceField(choices=["allow", "throttle", "degrade"])
    limits = LimitOut(many=True)
    evaluated_at = serializers.DateTimeField(allow_null=True)


def _out(budget: Budget, status: BudgetPeriod | None) -> dict[str, Any]:
    return dict(BudgetOut({**_fields(budget), "status": status}).data)


def _fields(budget: Budget) -> dict[str, Any]:
    names = [
        str(f) for f in BudgetOut().fields if f not in ("status", "tenant", "cost_center", "meter")
    ]
    return {
        **{name: getattr(budget, name) for name in names},
        "tenant": budget.tenant,
        "cost_center": budget.cost_center,
        "meter": budget.meter,
    }


def _references(data: dict[str, Any], principal: ApiPrincipal) -> dict[str, Any]:
    """Tenant, cost center and meter from their external names, within the caller's scope."""
    scope_tenant = principal.tenant_id
    out: dict[str, Any] = {}
    if scope_tenant is not None:
        if data.get("scope") == Budget.Scope.COST_CENTER:
            raise BudgetInvalid(
                "scope: cost_center budgets span tenants; they need an operator key", field="scope"
            )
        own = data.get("tenant") or principal.tenant_external_id or ""
        out["tenant"] = tenant_get(external_id=own, scope_tenant_id=scope_tenant)
    elif "tenant" in data:
        out["tenant"] = tenant_get(external_id=data["tenant"], scope_tenant_id=None)
    if "cost_center" in data:
        out["cost_center"] = CostCenter.objects.filter(code=data["cost_center"]).first()
        if out["cost_center"] is None:
            raise BudgetInvalid(
                f"cost_center: no cost center {data['cost_center']!r}", field="cost_center"
            )
    if "meter" in data:
        out["meter"] = Meter.objects.filter(code=data["meter"]).first()
        if out["meter"] is None:
            raise BudgetInvalid(f"meter: no meter {data['meter']!r}", field="meter")
    return out


_LIST_PARAMETERS = [
    OpenApiParameter("tenant", str, description="only this tenant's budgets (external id)"),
    OpenApiParameter("active", bool, description="true or false"),
]


class BudgetListView(APIView):
    permission_classes = [_ReadOrAdmin]

    @extend_schema(
        summary="Budgets, with where each stands",
        operation_id="budgets_list",
        parameters=_LIST_PARAMETERS,
        responses={200: results_of(BudgetOut, "BudgetList")},
    )
    def get(self, request: Request) -> Response:
        scope = principal_of(request).tenant_id
        tenant_id = None
        if request.query_params.get("tenant"):
            tenant_id = tenant_get(
                external_id=request.query_params["tenant"], scope_tenant_id=scope
            ).id
        active_text = request.query_params.get("active")
        if active_text not in (None, "true", "false"):
            raise BudgetInvalid(f"active: {active_text!r} is not true or false", field="active")
        active = None if active_text is None else active_text == "true"
        budgets = list(budget_list(scope_tenant_id=scope, tenant_id=tenant_id, active=active))
        latest = budget_periods_latest(budget_ids=[b.id for b in budgets])
        return Response({"results": [_out(b, latest.get(b.id)) for b in budgets]})

    @extend_schema(summary="Create a budget", request=BudgetIn, responses={201: BudgetOut})
    def post(self, request: Request) -> Response:
        body = BudgetIn(data=request.data)
        body.is_valid(raise_exception=True)
        data: dict[str, Any] = dict(body.validated_data)
        data |= _references(data, principal_of(request))
        start: date | None = data.pop("period_start", None)
        end: date | None = data.pop("period_end", None)
        budget = budget_create(**data, period_start=start, period_end=end)
        return Response(_out(budget, None), status=201)


class BudgetDetailView(APIView):
    permission_classes = [_ReadOrAdmin]

    @extend_schema(summary="A budget and its current period", responses={200: BudgetOut})
    def get(self, request: Request, budget_id: str) -> Response:
        budget = budget_get(budget_id=budget_id, scope_tenant_id=principal_of(request).tenant_id)
        return Response(_out(budget, budget_periods_latest(budget_ids=[budget.id]).get(budget.id)))

    @extend_schema(
        summary="Change a budget's name, amount, thresholds, action or recipients",
        request=BudgetPatchIn,
        responses={200: BudgetOut},
    )
    def patch(self, request: Request, budget_id: str) -> Response:
        budget = budget_get(budget_id=budget_id, scope_tenant_id=principal_of(request).tenant_id)
        body = BudgetPatchIn(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        updated = budget_update(budget_id=budget.id, changes=dict(body.validated_data))
        return Response(_out(updated, budget_periods_latest(budget_ids=[budget.id]).get(budget.id)))

    @extend_schema(summary="Deactivate a budget", request=None, responses={200: BudgetOut})
    def delete(self, request: Request, budget_id: str) -> Response:
        budget = budget_get(budget_id=budget_id, scope_tenant_id=principal_of(request).tenant_id)
        NoInput.check(request)
        done = budget_deactivate(budget_id=budget.id)
        return Response(_out(done, budget_periods_latest(budget_ids=[budget.id]).get(budget.id)))


class BudgetAlertListView(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        summary="A budget's alerts, newest first",
        responses={200: results_of(BudgetAlertOut, "BudgetAlertList")},
    )
    def get(self, request: Request, budget_id: str) -> Response:
        budget = budget_get(budget_id=budget_id, scope_tenant_id=principal_of(request).tenant_id)
        alerts: list[BudgetAlert] = list(budget_alert_list(budget=budget)[:500])
        return Response({"results": [BudgetAlertOut(a).data for a in alerts]})


class LimitsView(APIView):
    permission_classes = [_GatewayScope]

    @extend_schema(
        summary="Whether to allow, throttle or degrade a tenant's calls (cached; fast)",
        description=(
            "decision is the tenant-wide answer (its tenant budgets over their limit); limits "
            "lists every over-limit budget that applies, feature, workflow and endpoint ones "
            "included, for the gateway to apply to matching calls."
        ),
        responses={200: LimitsOut, 404: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, external_id: str) -> Response:
        principal = principal_of(request)
        if principal.tenant_id is not None and principal.tenant_external_id != external_id:
            raise tenant_not_found(external_id)
        return Response(limits_get(external_id=external_id))
