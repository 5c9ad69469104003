"""Webhook endpoints over the API. An operator-wide admin key manages every endpoint (and may
create one for a tenant); a tenant-bound admin key only its own tenant's, where another
tenant's endpoint reads as not found."""

from typing import Any

from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.alerts.errors import WebhookDeliveryNotFound
from apps.alerts.models import EVENT_TYPES, WebhookDelivery, WebhookEndpoint
from apps.alerts.selectors import webhook_endpoint_list
from apps.alerts.services.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_disable,
    webhook_endpoint_get,
    webhook_redeliver,
    webhook_secret_rotate,
)
from apps.core.api.schema import results_of
from apps.core.api.serializers import NoInput, StrictInput
from apps.tenants.api.authentication import AdminScope, principal_of
from apps.tenants.selectors import tenant_get


class EndpointIn(StrictInput):
    url = serializers.CharField(max_length=500)
    event_types = serializers.ListField(child=serializers.CharField(), default=list)
    tenant = serializers.CharField(required=False, allow_blank=False)
    description = serializers.CharField(max_length=200, required=False, default="")


class EndpointOut(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.CharField()
    tenant = serializers.SerializerMethodField()
    event_types = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    active = serializers.BooleanField()
    disabled_reason = serializers.CharField()
    created_at = serializers.DateTimeField()

    def get_tenant(self, obj: WebhookEndpoint) -> str | None:
        return obj.tenant.external_id if obj.tenant else None


class EndpointWithSecretOut(EndpointOut):
    secret = serializers.CharField()


def _endpoint_out(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    serializer = EndpointWithSecretOut if with_secret else EndpointOut
    return dict(serializer(endpoint).data)


class EndpointListView(APIView):
    permission_classes = [AdminScope]

    @extend_schema(
        summary="Webhook endpoints",
        operation_id="webhooks_endpoints_list",
        responses={200: results_of(EndpointOut, "EndpointList")},
    )
    def get(self, request: Request) -> Response:
        rows = webhook_endpoint_list(scope_tenant_id=principal_of(request).tenant_id)
        return Response({"results": [_endpoint_out(e) for e in rows]})

    @extend_schema(
        summary="Add a webhook endpoint (the secret is shown once)",
        description=f"Event types: {', '.join(EVENT_TYPES)} (none: every type).",
        request=EndpointIn,
        responses={201: EndpointWithSecretOut},
    )
    def post(self, request: Request) -> Response:
        body = EndpointIn(data=request.data)
        body.is_valid(raise_exception=True)
        scope = principal_of(request).tenant_id
        tenant_id = scope
        if "tenant" in body.validated_data:
            tenant_id = tenant_get(
                external_id=body.validated_data["tenant"], scope_tenant_id=scope
            ).id
        endpoint = webhook_endpoint_create(
            url=body.validated_data["url"],
            tenant_id=tenant_id,
            event_types=body.validated_data["event_types"],
            description=body.validated_data["description"],
        )
        return Response(_endpoint_out(endpoint, with_secret=True), status=201)


class EndpointDetailView(APIView):
    permission_classes = [AdminScope]

    @extend_schema(
        summary="A webhook endpoint with its latest deliveries",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        endpoint = webhook_endpoint_get(
            endpoint_id=endpoint_id, scope_tenant_id=principal_of(request).tenant_id
        )
        deliveries = (
            WebhookDelivery.objects.filter(endpoint=endpoint)
            .select_related("message")
            .prefetch_related("log")
            .order_by("-created_at")[:50]
        )
        return Response(
            {
                **_endpoint_out(endpoint),
                "deliveries": [
                    {
                        "id": str(d.id),
                        "webhook_id": d.message.msg_id,
                        "type": d.message.event_type,
                        "status": d.status,
                        "attempts": d.attempts,
                        "next_attempt_at": d.next_attempt_at,
                        "log": [
                            {
                                "number": a.number,
                                "status_code": a.status_code,
                                "error": a.error,
                                "duration_ms": a.duration_ms,
                                "at": a.created_at,
                            }
                            for a in d.log.all()
                        ],
                    }
                    for d in deliveries
                ],
            }
        )

    @extend_schema(summary="Disable a webhook endpoint", request=None, responses={200: EndpointOut})
    def delete(self, request: Request, endpoint_id: str) -> Response:
        endpoint = webhook_endpoint_get(
            endpoint_id=endpoint_id, scope_tenant_id=principal_of(request).tenant_id
        )
        NoInput.check(request)
        disabled = webhook_endpoint_disable(endpoint_id=endpoint.id, reason="disabled over the API")
        return Response(_endpoint_out(disabled))


class EndpointRotateView(APIView):
    permission_classes = [AdminScope]

    @extend_schema(
        summary="Rotate the signing secret (the old one signs too for 24 hours)",
        request=None,
        responses={200: EndpointWithSecretOut},
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint = webhook_endpoint_get(
            endpoint_id=endpoint_id, scope_tenant_id=principal_of(request).tenant_id
        )
        NoInput.check(request)
        return Response(
            _endpoint_out(webhook_secret_rotate(endpoint_id=endpoint.id), with_secret=True)
        )


class RedeliverView(APIView):
    permission_classes = [AdminScope]

    @extend_schema(
        summary="Send a delivery again now", request=None, responses={202: OpenApiTypes.OBJECT}
    )
    def post(self, request: Request, endpoint_id: str, delivery_id: str) -> Response:
        endpoint = webhook_endpoint_get(
            endpoint_id=endpoint_id, scope_tenant_id=principal_of(request).tenant_id
        )
        NoInput.check(request)
        try:
            delivery = WebhookDelivery.objects.filter(endpoint=endpoint, id=delivery_id).first()
        except ValidationError:  # not a UUID
            delivery = None
        if delivery is None:
            raise WebhookDeliveryNotFound(f"delivery {delivery_id} not found", field="id")
        redone = webhook_redeliver(delivery_id=delivery.id)
        return Response({"id": str(redone.id), "status": redone.status}, status=202)
