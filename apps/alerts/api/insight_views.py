"""Anomalies and forecasts over the API. Both are the operator's own figures (what calls cost
us, where revenue is heading), so every route needs an operator-wide key: a tenant-bound key
gets 403 and nothing else."""

import re
from datetime import date
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.alerts.errors import AnomalyQueryInvalid, ForecastQueryInvalid
from apps.alerts.models import Anomaly, ForecastSnapshot
from apps.alerts.selectors import anomaly_list, forecast_accuracy, forecast_latest
from apps.alerts.services.anomalies import anomaly_acknowledge, anomaly_resolve
from apps.core.api.schema import results_of
from apps.core.api.serializers import NoInput
from apps.core.errors import ValidationFailed
from apps.core.periods import PERIOD_YEARS, PERIOD_YEARS_TEXT
from apps.tenants.api.authentication import OperatorAdminScope, OperatorReadScope
from apps.tenants.selectors import tenant_get

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
MAX_LIMIT = 1000


def _checked(
    serializer: type[serializers.Serializer], data: Any, error: type[ValidationFailed]
) -> dict[str, Any]:
    """The validated query, or the first problem as an error naming its field."""
    parsed = serializer(data=data)
    if not parsed.is_valid():
        name, problems = next(iter(parsed.errors.items()))
        raise error(f"{name}: {problems[0]} (got {data.get(name)!r})", field=name)
    return dict(parsed.validated_data)


def _month(text: str | None) -> date:
    match = _MONTH.match(text or "")
    if not match or not 1 <= int(match[2]) <= 12 or int(match[1]) not in PERIOD_YEARS:
        raise ForecastQueryInvalid(
            f"period: {text!r} is not YYYY-MM ({PERIOD_YEARS_TEXT})",
            field="period",
        )
    return date(int(match[1]), int(match[2]), 1)


class AnomalyQuery(serializers.Serializer):
    status = serializers.ChoiceField(choices=Anomaly.Status.choices, required=False)
    kind = serializers.ChoiceField(choices=Anomaly.Kind.choices, required=False)
    tenant = serializers.CharField(required=False, max_length=200)
    since = serializers.DateTimeField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_LIMIT, default=200)


class AnomalyOut(serializers.Serializer):
    id = serializers.UUIDField()
    tenant = serializers.SerializerMethodField()
    scope = serializers.CharField()
    scope_value = serializers.CharField()
    kind = serializers.CharField()
    hour = serializers.DateTimeField()
    observed = serializers.DecimalField(max_digits=38, decimal_places=12)
    baseline_median = serializers.DecimalField(max_digits=38, decimal_places=12)
    baseline_mad = serializers.DecimalField(max_digits=38, decimal_places=12)
    baseline_method = serializers.CharField()
    score = serializers.DecimalField(max_digits=18, decimal_places=4)
    cause_dimension = serializers.CharField()
    cause_value = serializers.CharField()
    evidence = serializers.JSONField()
    status = serializers.CharField()
    detected_at = serializers.DateTimeField()

    def get_tenant(self, obj: Anomaly) -> str | None:
        return obj.tenant.external_id if obj.tenant else None


class AnomalyListView(APIView):
    permission_classes = [OperatorReadScope]

    @extend_schema(
        summary="Anomalies, newest hour first",
        parameters=[
            OpenApiParameter("status", str, enum=Anomaly.Status.values),
            OpenApiParameter("kind", str, enum=Anomaly.Kind.values),
            OpenApiParameter("tenant", str, description="a tenant's external id"),
            OpenApiParameter("since", str, description="first hour, ISO 8601"),
            OpenApiParameter("limit", int, description=f"1 to {MAX_LIMIT}, default 200"),
        ],
        responses={200: results_of(AnomalyOut, "AnomalyList")},
    )
    def get(self, request: Request) -> Response:
        query = _checked(AnomalyQuery, request.query_params, AnomalyQueryInvalid)
        tenant_id = None
        if query.get("tenant"):
            tenant_id = tenant_get(external_id=query["tenant"], scope_tenant_id=None).id
        rows = anomaly_list(
            status=query.get("status"),
            kind=query.get("kind"),
            tenant_id=tenant_id,
            since=query.get("since"),
        )[: query["limit"]]
        return Response({"results": AnomalyOut(rows, many=True).data})


class AnomalyAcknowledgeView(APIView):
    permission_classes = [OperatorAdminScope]

    @extend_schema(summary="Acknowledge an anomaly", request=None, responses={200: AnomalyOut})
    def post(self, request: Request, anomaly_id: str) -> Response:
        NoInput.check(request)
        return Response(AnomalyOut(anomaly_acknowledge(anomaly_id=anomaly_id)).data)


class AnomalyResolveView(APIView):
    permission_classes = [OperatorAdminScope]

    @extend_schema(summary="Resolve an anomaly", request=None, responses={200: AnomalyOut})
    def post(self, request: Request, anomaly_id: str) -> Response:
        NoInput.check(request)
        return Response(AnomalyOut(anomaly_resolve(anomaly_id=anomaly_id)).data)


class ForecastQuery(serializers.Serializer):
    scope = serializers.ChoiceField(choices=ForecastSnapshot.Scope.choices, required=False)
    measure = serializers.ChoiceField(choices=ForecastSnapshot.Measure.choices, required=False)


class ForecastOut(serializers.Serializer):
    scope = serializers.CharField()
    scope_key = serializers.CharField()
    measure = serializers.CharField()
    currency = serializers.CharField()
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    made_on = serializers.DateField()
    actual_to_date = serializers.DecimalField(max_digits=38, decimal_places=12)
    forecast = serializers.DecimalField(max_digits=38, decimal_places=12)
    lower = serializers.DecimalField(max_digits=38, decimal_places=12)
    upper = serializers.DecimalField(max_digits=38, decimal_places=12)
    method = serializers.CharField()
    actual = serializers.DecimalField(max_digits=38, decimal_places=12, allow_null=True)


_PERIOD = OpenApiParameter("period", str, required=True, description="YYYY-MM (UTC month)")


class ForecastListView(APIView):
    permission_classes = [OperatorReadScope]

    @extend_schema(
        summary="The latest forecast of each scope of a month, with its ~80 % band",
        parameters=[
            _PERIOD,
            OpenApiParameter("scope", str, enum=ForecastSnapshot.Scope.values),
            OpenApiParameter("measure", str, enum=ForecastSnapshot.Measure.values),
        ],
        responses={200: results_of(ForecastOut, "ForecastList", period=serializers.CharField())},
    )
    def get(self, request: Request) -> Response:
        start = _month(request.query_params.get("period"))
        query = _checked(ForecastQuery, request.query_params, ForecastQueryInvalid)
        rows = forecast_latest(
            period_start=start, scope=query.get("scope"), measure=query.get("measure")
        )
        return Response(
            {"period": start.strftime("%Y-%m"), "results": ForecastOut(rows, many=True).data}
        )


class CenterAccuracyOut(serializers.Serializer):
    cost_center = serializers.CharField()
    snapshots = serializers.IntegerField()
    excluded_zero_actual = serializers.IntegerField()
    mape_pct = serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True)


class OverallAccuracyOut(serializers.Serializer):
    snapshots = serializers.IntegerField()
    excluded_zero_actual = serializers.IntegerField()
    mape_pct = serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True)


class AccuracyOut(serializers.Serializer):
    period = serializers.CharField()
    cost_centers = CenterAccuracyOut(many=True)
    overall = OverallAccuracyOut()


class ForecastAccuracyView(APIView):
    permission_classes = [OperatorReadScope]

    @extend_schema(
        summary="Cost forecast accuracy (MAPE) per cost center of a closed month",
        parameters=[_PERIOD],
        responses={200: AccuracyOut},
    )
    def get(self, request: Request) -> Response:
        start = _month(request.query_params.get("period"))
        answer = {"period": start.strftime("%Y-%m"), **forecast_accuracy(period_start=start)}
        return Response(AccuracyOut(answer).data)
