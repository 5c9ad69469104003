from typing import Any

import yaml
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.catalog.errors import CatalogInvalid
from apps.catalog.selectors import catalog_export
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.tenants.api.authentication import OperatorAdminScope, ReadScope, principal_of

_MAX_CATALOG_BYTES = 2 * 1024 * 1024


class CatalogView(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        summary="Export the catalog",
        description=(
            "The whole catalog (meters, every rate-card version, plans, credit packs; the price "
            "book and FX rates for operator-wide keys) in the shape `POST /api/v1/catalog/apply` "
            "takes back unchanged. `?format=yaml` for YAML."
        ),
        parameters=[OpenApiParameter("format", str, enum=["json", "yaml"])],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "application/yaml"): OpenApiTypes.OBJECT,
        },
    )
    def get(self, request: Request) -> Any:
        # What upstream providers charge us is the operator's business: tenant-bound keys see
        # the prices they pay, not the price book.
        exported = catalog_export(with_costs=principal_of(request).tenant_id is None)
        if request.query_params.get("format") == "yaml":
            text = yaml.safe_dump(exported, sort_keys=False, allow_unicode=True)
            return HttpResponse(text, content_type="application/yaml")
        return Response(exported)


class CatalogApplyView(APIView):
    """The catalog file as the body, YAML or JSON; read here, not by DRF's parsers, so that
    numbers stay exact decimals."""

    permission_classes = [OperatorAdminScope]
    parser_classes: list[Any] = []

    @extend_schema(
        summary="Apply a catalog file",
        description=(
            "Creates, updates or leaves unchanged each meter, rate-card version, plan and "
            "credit pack the file names; applying the same file twice changes nothing. An "
            "invalid file is refused whole (400, `field` is the path in the file); a change to "
            "what finalized invoices were priced with is 409."
        ),
        request={"application/yaml": OpenApiTypes.STR, "application/json": OpenApiTypes.OBJECT},
        responses={200: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request) -> Response:
        body = request._request.read(_MAX_CATALOG_BYTES + 1)
        if len(body) > _MAX_CATALOG_BYTES:
            raise CatalogInvalid(f"body: more than {_MAX_CATALOG_BYTES} bytes")
        doc = catalog_parse(content=body, content_type=request.content_type or "")
        report = catalog_apply(doc=doc)
        return Response({"changed": report.changed, **report.sections})
