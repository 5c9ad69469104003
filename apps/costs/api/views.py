from typing import Any
from uuid import UUID

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.costs.errors import AnalyticsQueryInvalid
from apps.costs.metrics import METRICS, metric_answer
from apps.costs.selectors import cost_period_parse, group_by_parse
from apps.tenants.api.authentication import OperatorReadScope

ANALYTICS_PARAMETERS = [
    OpenApiParameter("period", str, required=True, description="YYYY-MM (UTC month)"),
    OpenApiParameter(
        "group_by",
        str,
        description="comma list of tenant, feature, workflow, endpoint, team, service, "
        "environment, provider, model",
    ),
    OpenApiParameter("tenant", str, description="only this tenant's calls (id)"),
]


def analytics_query(request: Request) -> dict[str, Any]:
    """The period, group_by and tenant of an analytics request, checked."""
    params = request.query_params
    tenant = params.get("tenant")
    tenant_id = None
    if tenant:
        try:
            tenant_id = UUID(tenant)
        except ValueError as exc:
            raise AnalyticsQueryInvalid(f"tenant: {tenant!r} is not an id", field="tenant") from exc
    return {
        "period": cost_period_parse(params.get("period")),
        "group_by": group_by_parse(params["group_by"]) if "group_by" in params else None,
        "tenant_id": tenant_id,
    }


class AnalyticsView(APIView):
    permission_classes = [OperatorReadScope]

    @extend_schema(
        summary="A cost-intelligence metric",
        description=(
            f"One of: {', '.join(METRICS)}. Rows per group with the figures, the previous "
            "period's value and the change. Operator-wide keys only."
        ),
        parameters=ANALYTICS_PARAMETERS,
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, metric: str) -> Response:
        return Response(metric_answer(metric, **analytics_query(request)))
