from datetime import date
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.chargeback.metrics import full_cost_per_call_metric
from apps.chargeback.models import Statement
from apps.chargeback.selectors import statement_get, statement_list
from apps.chargeback.services.exports import focus_csv, gl_csv
from apps.chargeback.services.pdf import statement_pdf_bytes
from apps.chargeback.services.statements import (
    statement_correct,
    statement_issue,
    statements_run,
)
from apps.core.api.serializers import NoInput, StrictInput
from apps.costs.api.views import ANALYTICS_PARAMETERS, analytics_query
from apps.costs.errors import AnalyticsQueryInvalid
from apps.costs.selectors import cost_period_parse
from apps.tenants.api.authentication import OperatorAdminScope, OperatorReadScope

_PERIOD = [OpenApiParameter("period", str, required=True, description="YYYY-MM (UTC month)")]


def _month(request: Request) -> date:
    period = cost_period_parse(request.query_params.get("period"))
    if not period.is_month:
        raise AnalyticsQueryInvalid("period: statements are monthly, give YYYY-MM", field="period")
    return period.start


class StatementOut(serializers.ModelSerializer):
    cost_center = serializers.SerializerMethodField()
    corrects = serializers.SerializerMethodField()
    lines = serializers.SerializerMethodField()

    class Meta:
        model = Statement
        fields = [
            "id",
            "number",
            "status",
            "cost_center",
            "period_start",
            "period_end",
            "currency",
            "direct_amount",
            "allocated_amount",
            "total_amount",
            "budget_amount",
            "variance_amount",
            "calls",
            "uncosted_calls",
            "drivers",
            "corrects",
            "correction_reason",
            "drafted_at",
            "issued_at",
            "lines",
        ]

    def get_cost_center(self, obj: Statement) -> dict[str, str]:
        c = obj.cost_center
        return {"code": c.code, "name": c.name} if c else {"code": "", "name": "Unallocated"}

    def get_corrects(self, obj: Statement) -> str | None:
        return str(obj.corrects_id) if obj.corrects_id else None

    def get_lines(self, obj: Statement) -> list[dict[str, Any]] | None:
        if not self.context.get("lines"):
            return None
        return [
            {
                "kind": ln.kind,
                "day": ln.day.isoformat() if ln.day else None,
                "service": ln.service,
                "feature": ln.feature,
                "provider": ln.provider,
                "model": ln.model,
                "pool": ln.pool.code if ln.pool else None,
                "method": ln.method,
                "description": ln.description,
                "calls": ln.calls,
                "exact_amount": str(ln.exact_amount),
                "amount": str(ln.amount),
            }
            for ln in obj.lines.all()
        ]


class FullCostPerCallView(APIView):
    permission_classes = [OperatorReadScope]

    @extend_schema(
        summary="Full cost per call (direct + allocated shared cost)",
        parameters=ANALYTICS_PARAMETERS,
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        return Response(full_cost_per_call_metric(**analytics_query(request)))


class StatementListView(APIView):
    permission_classes = [OperatorReadScope]

    @extend_schema(
        summary="Chargeback statements of a month",
        operation_id="statements_list",
        parameters=_PERIOD,
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        rows = statement_list(period_start=_month(request))
        return Response({"results": StatementOut(rows, many=True).data})


class StatementsRunView(APIView):
    permission_classes = [OperatorAdminScope]

    @extend_schema(
        summary="Draft or refresh the statements of a month",
        parameters=_PERIOD,
        request=None,
        responses={200: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request) -> Response:
        NoInput.check(request)
        period = cost_period_parse(str(_month(request))[:7])
        return Response(statements_run(period=period).as_dict())


class StatementDetailView(APIView):
    permission_classes = [OperatorReadScope]

    @extend_schema(summary="A statement with its lines", responses={200: StatementOut})
    def get(self, request: Request, statement_id: str) -> Response:
        statement = statement_get(statement_id=statement_id)
        return Response(StatementOut(statement, context={"lines": True}).data)


class StatementPdfView(APIView):
    permission_classes = [OperatorReadScope]

    @extend_schema(
        summary="A statement as PDF",
        responses={(200, "application/pdf"): OpenApiTypes.BINARY},
    )
    def get(self, request: Request, statement_id: str) -> HttpResponse:
        statement = statement_get(statement_id=statement_id)
        response = HttpResponse(statement_pdf_bytes(statement), content_type="application/pdf")
        name = statement.number or f"draft-{statement.id}"
        response["Content-Disposition"] = f'inline; filename="{name}.pdf"'
        return response


class StatementIssueView(APIView):
    permission_classes = [OperatorAdminScope]

    @extend_schema(
        summary="Issue a draft statement (numbered, then immutable)",
        request=None,
        responses={200: StatementOut},
    )
    def post(self, request: Request, statement_id: str) -> Response:
        NoInput.check(request)
        statement = statement_issue(statement_id=statement_id, actor=None)
        return Response(StatementOut(statement_get(statement_id=statement.id)).data)


class CorrectionIn(StrictInput):
    reason = serializers.CharField(max_length=500)


class StatementCorrectView(APIView):
    permission_classes = [OperatorAdminScope]

    @extend_schema(
        summary="Draft a correction of an issued statement",
        request=CorrectionIn,
        responses={201: StatementOut},
    )
    def post(self, request: Request, statement_id: str) -> Response:
        body = CorrectionIn(data=request.data)
        body.is_valid(raise_exception=True)
        statement = statement_correct(
            statement_id=statement_id, reason=body.validated_data["reason"]
        )
        return Response(StatementOut(statement_get(statement_id=statement.id)).data, status=201)


def _csv_response(text: str, name: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


class FocusExportView(APIView):
    permission_classes = [OperatorReadScope]

    @extend_schema(
        summary="FOCUS 1.2 cost export (CSV)",
        parameters=_PERIOD,
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request: Request) -> HttpResponse:
        month = _month(request)
        return _csv_response(focus_csv(period_start=month), f"focus-{month:%Y-%m}.csv")


class GlExportView(APIView):
    permission_classes = [OperatorReadScope]

    @extend_schema(
        summary="Statements for the general ledger (CSV)",
        parameters=_PERIOD,
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request: Request) -> HttpResponse:
        month = _month(request)
        return _csv_response(gl_csv(period_start=month), f"chargeback-gl-{month:%Y-%m}.csv")
