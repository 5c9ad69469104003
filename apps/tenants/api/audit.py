"""The audit log over the API: who changed money and configuration, newest first.

An operator-wide key with read scope sees every entry; a tenant-bound key sees its own tenant's
(its invoices, credits, keys and team), never the operator's configuration or another tenant's.
The log lives in ``core``; this view is here because API keys are the tenants app's."""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.audit import AUDIT_PAGE_MAX, audit_entry_list
from apps.core.clock import utc_time_parse
from apps.core.errors import ValidationFailed
from apps.tenants.api.authentication import ReadScope, principal_of
from apps.tenants.selectors import tenant_actors, tenant_external_ids, tenant_get


class AuditEntryOut(serializers.Serializer):
    id = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    actor = serializers.CharField()
    action = serializers.CharField()
    tenant = serializers.CharField(allow_null=True)
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)
    request_id = serializers.CharField()


def _actor_shown(actor: str, own: set[str] | None) -> str:
    if own is None or actor in own or not actor.startswith(("user:", "api-key:")):
        return actor
    return "operator"


def _moment(params: Any, name: str) -> Any:
    value = params.get(name)
    if not value:
        return None
    try:
        return utc_time_parse(value, field=name)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field=name) from exc


def _int(params: Any, name: str, default: int | None) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        return default
    if not (value.isascii() and value.isdecimal()) or len(value) > 18:
        raise ValidationFailed(f"{name}: {value[:40]!r} is not a positive integer", field=name)
    return int(value)


class AuditEntryListView(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        summary="The audit log of money and configuration actions, newest first",
        parameters=[
            OpenApiParameter("tenant", str, description="a tenant's external id"),
            OpenApiParameter("action", str, description="invoice, or invoice.void"),
            OpenApiParameter("target_type", str),
            OpenApiParameter("target_id", str),
            OpenApiParameter("since", str, description="RFC 3339, inclusive"),
            OpenApiParameter("until", str, description="RFC 3339, exclusive"),
            OpenApiParameter("before_id", int, description="page: entries older than this id"),
            OpenApiParameter("limit", int, description=f"at most {AUDIT_PAGE_MAX}; default 100"),
        ],
        responses={
            200: inline_serializer(
                "AuditEntryPage",
                {
                    "results": AuditEntryOut(many=True),
                    "next_before_id": serializers.IntegerField(allow_null=True),
                },
            )
        },
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        scope = principal_of(request).tenant_id
        external_id = params.get("tenant")
        tenant = tenant_get(external_id=external_id, scope_tenant_id=scope) if external_id else None
        limit = _int(params, "limit", 100) or 1
        rows = audit_entry_list(
            scope_tenant_id=scope,
            tenant_id=tenant.id if tenant else None,
            action=params.get("action") or None,
            target_type=params.get("target_type") or None,
            target_id=params.get("target_id") or None,
            since=_moment(params, "since"),
            until=_moment(params, "until"),
            before_id=_int(params, "before_id", None),
            limit=limit,
        )
        names = tenant_external_ids(ids={r.tenant_id for r in rows if r.tenant_id})
        # A tenant reads which of its own people and keys did what; the operator's staff and
        # keys show as "operator" (tasks and "system" as they are).
        own = tenant_actors(tenant_id=scope) if scope is not None else None
        fields = [str(name) for name in AuditEntryOut().fields if name != "tenant"]
        results = [
            {
                **{name: getattr(r, name) for name in fields},
                "actor": _actor_shown(r.actor, own),
                "tenant": names.get(r.tenant_id) if r.tenant_id else None,
            }
            for r in rows
        ]
        full = len(rows) == min(max(limit, 1), AUDIT_PAGE_MAX)
        return Response(
            {
                "results": AuditEntryOut(results, many=True).data,
                "next_before_id": rows[-1].id if rows and full else None,
            }
        )
