from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.clock import utc_time_parse
from apps.metering.api.ingest_rate import ingest_rate_check
from apps.metering.errors import IngestBodyTooLarge, UsageQueryInvalid
from apps.metering.selectors import USAGE_GROUPS, UsageQuery, usage_intake_check, usage_series
from apps.metering.services.ingest import IngestCaller, events_ingest
from apps.tenants.api.authentication import IngestScope, ReadScope, principal_of
from apps.tenants.selectors import tenant_get

_BOOL_TRUE = ("1", "true", "yes")


def _body_read(request: HttpRequest, limit: int) -> bytes:
    """The request body, refused with 413 before it is read when it declares more than
    ``limit`` bytes, and as soon as more than ``limit`` arrive when it does not."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit():
        raise IngestBodyTooLarge("Content-Length: not a number")
    if int(declared) > limit:
        raise IngestBodyTooLarge(
            f"body: {declared} bytes, more than the {limit} allowed; split the batch"
        )
    body = request.read(limit + 1)
    if len(body) > limit:
        raise IngestBodyTooLarge(f"body: more than the {limit} bytes allowed; split the batch")
    return body


_outcome = inline_serializer(
    "EventOutcome",
    {
        "index": serializers.IntegerField(),
        "id": serializers.CharField(allow_null=True),
        "status": serializers.ChoiceField(["duplicate", "conflict", "rejected"]),
        "code": serializers.CharField(),
        "message": serializers.CharField(),
    },
)
_ingest_response = inline_serializer(
    "IngestResult",
    {
        "accepted": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "conflicts": serializers.IntegerField(),
        "rejected": serializers.IntegerField(),
        "results": _outcome.__class__(many=True),
    },
)


class EventIngestView(APIView):
    """Ingest a batch of metered events. The body is read and parsed here, not by DRF's parsers,
    so that it is decoded once, by msgspec, with a hard size limit."""

    permission_classes = [IngestScope]
    parser_classes: list[Any] = []
    error_statuses = (413,)  # a body over PERCALL_INGEST_MAX_BODY_BYTES

    @extend_schema(
        summary="Ingest events",
        description=(
            'Body `{"events": [...]}` with 1 to 5,000 events (5 MB at most), a CloudEvent '
            "(`application/cloudevents+json`), a CloudEvents batch "
            "(`application/cloudevents-batch+json`) or a binary-mode CloudEvent (`ce-*` headers). "
            "200 when every event was accepted or a duplicate, 207 when any was rejected or "
            "conflicted; `results` lists only the events that were not accepted. 429 with "
            "`Retry-After` when the batch would take a tenant over its ingestion rate (nothing "
            "of it is stored)."
        ),
        request={
            "application/json": OpenApiTypes.OBJECT,
            "application/cloudevents+json": OpenApiTypes.OBJECT,
            "application/cloudevents-batch+json": {"type": "array", "items": {"type": "object"}},
        },
        examples=[
            OpenApiExample(
                "A batch of two calls",
                request_only=True,
                value={
                    "events": [
                        {
                            "id": "call-1",
                            "type": "api.call",
                            "tenant": "acme",
                            "endpoint": "/v1/search",
                            "cost": "0.01",
                            "cost_currency": "USD",
                        },
                        {
                            "id": "call-2",
                            "type": "llm.call",
                            "tenant": "acme",
                            "model": "gpt-4o",
                            "input_tokens": 1200,
                            "output_tokens": 300,
                        },
                    ]
                },
            )
        ],
        parameters=[
            OpenApiParameter("backfill", bool, description="admin only: lift the late window")
        ],
        responses={200: _ingest_response, 207: _ingest_response},
    )
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        backfill = request.query_params.get("backfill", "").lower() in _BOOL_TRUE
        if backfill and not principal.api_key.has_scope("admin"):
            raise PermissionDenied("backfill=true needs an API key with the 'admin' scope")
        body = _body_read(request._request, settings.PERCALL_INGEST_MAX_BODY_BYTES)
        content_type = request.content_type.split(";")[0].strip().lower()
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower().startswith("ce-")}
        ingest_rate_check(
            body=body,
            content_type=content_type,
            headers=headers,
            bound_tenant=principal.tenant_external_id,
        )
        result = events_ingest(
            body=body,
            content_type=content_type,
            headers=headers,
            caller=IngestCaller(
                api_key_prefix=principal.api_key.prefix,
                tenant_external_id=principal.tenant_external_id,
            ),
            backfill=backfill,
        )
        payload = {
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "conflicts": result.conflicts,
            "rejected": result.rejected,
            "results": [outcome.__dict__ for outcome in result.results],
        }
        return Response(payload, status=207 if result.rejected or result.conflicts else 200)


def _time_param(request: Request, name: str) -> datetime:
    raw = request.query_params.get(name)
    if not raw:
        raise UsageQueryInvalid(f"{name}: required (ISO 8601 with an offset)", field=name)
    try:
        return utc_time_parse(raw, field=name)
    except ValueError as exc:
        raise UsageQueryInvalid(str(exc), field=name) from exc


class UsageView(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        summary="Usage from hourly rollups",
        parameters=[
            OpenApiParameter("tenant", str, description="external id; operator keys may omit it"),
            OpenApiParameter("from", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter("to", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter(
                "group_by", str, description=f"comma-separated: {', '.join(USAGE_GROUPS)}"
            ),
            OpenApiParameter("granularity", str, enum=["hour", "day"]),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        external_id = request.query_params.get("tenant") or principal.tenant_external_id
        tenant = (
            tenant_get(external_id=external_id, scope_tenant_id=principal.tenant_id)
            if external_id
            else None
        )
        group_by = tuple(g for g in request.query_params.get("group_by", "").split(",") if g)
        query = UsageQuery(
            start=_time_param(request, "from"),
            end=_time_param(request, "to"),
            group_by=group_by,
            granularity=request.query_params.get("granularity", "hour"),
        )
        rows = usage_series(
            tenant_id=tenant.id if tenant else None,
            timezone_name=tenant.timezone if tenant else "UTC",
            query=query,
        )
        return Response(
            {
                "tenant": tenant.external_id if tenant else None,
                "from": query.start,
                "to": query.end,
                "granularity": query.granularity,
                "group_by": list(query.group_by),
                "data": _usage_rows(rows),
            }
        )


_DECIMAL_SUMS = ("credits", "quantity", "cost", "latency_ms_sum", "latency_ms_max")


def _usage_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decimals as strings (never floats) in the usage payload."""
    for row in rows:
        for name in _DECIMAL_SUMS:
            if row.get(name) is not None:
                row[name] = format(Decimal(row[name]).normalize(), "f")  # "0", never "0E-12"
    return rows


class UsageCheckView(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        summary="3-way intake check for one tenant and hour",
        parameters=[
            OpenApiParameter("tenant", str, required=True),
            OpenApiParameter("hour", OpenApiTypes.DATETIME, required=True),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        tenant = tenant_get(
            external_id=request.query_params.get("tenant") or principal.tenant_external_id or "",
            scope_tenant_id=principal.tenant_id,
        )
        check = usage_intake_check(tenant_id=tenant.id, hour=_time_param(request, "hour"))
        return Response(
            {
                "tenant": tenant.external_id,
                "hour": check.hour,
                "ingested": check.ingested,
                "stored": check.stored,
                "rolled_up": check.rolled_up,
                "pending": check.pending,
                "purged": check.purged,
                "balanced": check.balanced,
            }
        )
