"""The leakage API: the reconciliation report, the findings queue and on-demand scans.
Operator-wide keys only: findings compare tenants' bills with what their calls cost us."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.assurance.models import Finding, LeakageScan
from apps.assurance.selectors import (
    finding_get,
    finding_list,
    leakage_period_parse,
    leakage_report,
    leakage_tenant_get,
)
from apps.assurance.services.findings import finding_acknowledge, finding_resolve
from apps.assurance.services.scans import leakage_scan
from apps.core.api.schema import results_of
from apps.core.api.serializers import StrictInput
from apps.tenants.api.authentication import OperatorAdminScope, OperatorReadScope, principal_of

_PERIOD = OpenApiParameter("period", str, description="YYYY-MM: a calendar month")
_TENANT = OpenApiParameter("tenant", str, description="a tenant's external id")
_LIST_PARAMETERS = [
    _PERIOD,
    _TENANT,
    OpenApiParameter("status", str, enum=Finding.Status.values),
    OpenApiParameter("category", str, enum=Finding.Category.values),
]


def _actor(request: Request) -> str:
    key = principal_of(request).api_key
    return f"api-key:{key.prefix} ({key.name})"


class FindingOut(serializers.ModelSerializer):
    tenant = serializers.CharField(source="tenant.external_id")
    period = serializers.SerializerMethodField()

    class Meta:
        model = Finding
        fields = [
            "id",
            "category",
            "tenant",
            "period",
            "subject",
            "quantity",
            "unit",
            "amount_at_risk",
            "currency",
            "basis",
            "evidence",
            "first_seen_at",
            "last_seen_at",
            "status",
            "status_by",
            "status_reason",
            "status_changed_at",
            "reopened_count",
        ]

    def get_period(self, obj: Finding) -> str:
        return f"{obj.period_start:%Y-%m}"


class ScanOut(serializers.ModelSerializer):
    period = serializers.SerializerMethodField()

    class Meta:
        model = LeakageScan
        fields = [
            "id",
            "period",
            "started_at",
            "finished_at",
            "counts",
            "opened",
            "reopened",
            "updated",
            "resolved",
        ]

    def get_period(self, obj: LeakageScan) -> str:
        return f"{obj.period_start:%Y-%m}"


class LeakageReportView(APIView):
    permission_classes = [OperatorReadScope]

    @extend_schema(
        summary="Usage-vs-billing reconciliation of a month, per tenant and in total",
        parameters=[OpenApiParameter("period", str, required=True), _TENANT],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        month = leakage_period_parse(request.query_params.get("period"))
        external_id = request.query_params.get("tenant")
        tenant = leakage_tenant_get(external_id=external_id) if external_id else None
        return Response(leakage_report(period_start=month, tenant_id=tenant.id if tenant else None))


class FindingListView(APIView):
    permission_classes = [OperatorReadScope]

    @extend_schema(
        summary="Leakage findings",
        operation_id="leakage_findings_list",
        parameters=_LIST_PARAMETERS,
        responses={200: results_of(FindingOut, "FindingList")},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        month = leakage_period_parse(params["period"]) if params.get("period") else None
        tenant = leakage_tenant_get(external_id=params["tenant"]) if params.get("tenant") else None
        rows = finding_list(
            period_start=month,
            status=params.get("status") or None,
            category=params.get("category") or None,
            tenant_id=tenant.id if tenant else None,
        )
        return Response({"results": FindingOut(rows, many=True).data})


class FindingDetailView(APIView):
    permission_classes = [OperatorReadScope]

    @extend_schema(summary="A leakage finding with its evidence", responses={200: FindingOut})
    def get(self, request: Request, finding_id: str) -> Response:
        return Response(FindingOut(finding_get(finding_id=finding_id)).data)


class AcknowledgeIn(StrictInput):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class ResolveIn(StrictInput):
    reason = serializers.CharField(max_length=500)


def _body(serializer: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    body = serializer(data=request.data)
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


class FindingAcknowledgeView(APIView):
    permission_classes = [OperatorReadScope]

    @extend_schema(
        summary="Acknowledge an open finding", request=AcknowledgeIn, responses={200: FindingOut}
    )
    def post(self, request: Request, finding_id: str) -> Response:
        body = _body(AcknowledgeIn, request)
        finding = finding_acknowledge(
            finding_id=finding_id, actor=_actor(request), reason=body["reason"]
        )
        return Response(FindingOut(finding_get(finding_id=finding.id)).data)


class FindingResolveView(APIView):
    permission_classes = [OperatorAdminScope]

    @extend_schema(
        summary="Resolve a finding, saying why", request=ResolveIn, responses={200: FindingOut}
    )
    def post(self, request: Request, finding_id: str) -> Response:
        body = _body(ResolveIn, request)
        finding = finding_resolve(
            finding_id=finding_id, actor=_actor(request), reason=body["reason"]
        )
        return Response(FindingOut(finding_get(finding_id=finding.id)).data)


class ScanIn(StrictInput):
    period = serializers.CharField()
    tenant = serializers.CharField(required=False)


class LeakageScanView(APIView):
    permission_classes = [OperatorAdminScope]

    @extend_schema(summary="Scan a month for leakage now", request=ScanIn, responses={201: ScanOut})
    def post(self, request: Request) -> Response:
        body = _body(ScanIn, request)
        month = leakage_period_parse(body["period"])
        tenant = leakage_tenant_get(external_id=body["tenant"]) if body.get("tenant") else None
        scan = leakage_scan(period_start=month, tenant_ids=[tenant.id] if tenant else None)
        return Response(ScanOut(scan).data, status=201)
