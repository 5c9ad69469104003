from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.billing.api.output import (
    InvoiceOutput,
    InvoiceSummaryOutput,
    credits_dict,
    invoice_dict,
    invoice_summary,
    preview_dict,
    subscription_dict,
)
from apps.billing.errors import BillingInvalid, IdempotencyKeyMissing
from apps.billing.models import Invoice
from apps.billing.selectors import (
    invoice_get,
    invoice_list,
    invoice_preview,
    subscription_get,
    subscription_list,
    tenant_credits,
)
from apps.billing.services.operations import (
    credit_note_issue,
    invoice_finalize,
    invoice_mark_paid,
    invoice_void,
)
from apps.billing.services.pdf import invoice_pdf_for_download
from apps.billing.services.purchases import credit_pack_purchase, idempotent
from apps.billing.services.subscriptions import (
    subscription_cancel,
    subscription_create,
    subscription_plan_change,
)
from apps.catalog.selectors import credit_pack_get, plan_get
from apps.core.api.serializers import NoInput, StrictInput
from apps.core.clock import utc_time_parse
from apps.tenants.api.authentication import (
    AdminScope,
    OperatorAdminScope,
    ReadScope,
    principal_of,
)
from apps.tenants.selectors import tenant_get


class SubscriptionOutput(serializers.Serializer):
    id = serializers.UUIDField()
    tenant = serializers.CharField()
    plan = serializers.CharField()
    started_at = serializers.DateTimeField()
    trial_ends_at = serializers.DateTimeField(allow_null=True)
    ends_at = serializers.DateTimeField(allow_null=True)
    canceled_at = serializers.DateTimeField(allow_null=True)
    billed_through = serializers.DateTimeField(allow_null=True)
    plan_changes = serializers.ListField(child=serializers.DictField())


_Subscription = SubscriptionOutput


def _scope(request: Request) -> UUID | None:
    return principal_of(request).tenant_id


def _tenant(request: Request, external_id: str, field: str = "tenant") -> Any:
    return tenant_get(external_id=external_id, scope_tenant_id=_scope(request))


class SubscriptionInput(StrictInput):
    tenant = serializers.CharField(max_length=64)
    plan = serializers.CharField(max_length=64)
    start = serializers.DateTimeField()


class SubscriptionListView(APIView):
    def get_permissions(self) -> list:
        return [AdminScope()] if self.request.method == "POST" else [ReadScope()]

    @extend_schema(
        summary="List subscriptions",
        parameters=[OpenApiParameter("tenant", str)],
        responses=SubscriptionOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        tenant = request.query_params.get("tenant")
        tenant_id = _tenant(request, tenant).id if tenant else None
        rows = subscription_list(scope_tenant_id=_scope(request), tenant_id=tenant_id)
        return Response([subscription_dict(s) for s in rows])

    @extend_schema(
        summary="Subscribe a tenant to a plan",
        description="The plan's currency must be the tenant's. Periods are calendar months (or "
        "years) in the tenant's timezone; the first one starts at `start` and is prorated.",
        request=SubscriptionInput,
        responses={201: _Subscription},
    )
    def post(self, request: Request) -> Response:
        data = SubscriptionInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = _tenant(request, data.validated_data["tenant"])
        plan = plan_get(code=data.validated_data["plan"])
        subscription = subscription_create(
            tenant=tenant, plan=plan, start=data.validated_data["start"]
        )
        return Response(subscription_dict(subscription), status=201)


class SubscriptionDetailView(APIView):
    permission_classes = [ReadScope]

    @extend_schema(summary="Get a subscription", responses=_Subscription)
    def get(self, request: Request, subscription_id: UUID) -> Response:
        subscription = subscription_get(
            subscription_id=subscription_id, scope_tenant_id=_scope(request)
        )
        return Response(subscription_dict(subscription))


class PlanChangeInput(StrictInput):
    plan = serializers.CharField(max_length=64)


class SubscriptionPlanView(APIView):
    permission_classes = [AdminScope]

    @extend_schema(
        summary="Change plan from the next period",
        request=PlanChangeInput,
        responses=_Subscription,
    )
    def post(self, request: Request, subscription_id: UUID) -> Response:
        subscription_get(subscription_id=subscription_id, scope_tenant_id=_scope(request))
        data = PlanChangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        subscription_plan_change(
            subscription_id=subscription_id, plan=plan_get(code=data.validated_data["plan"])
        )
        return Response(
            subscription_dict(
                subscription_get(subscription_id=subscription_id, scope_tenant_id=None)
            )
        )


class CancelInput(StrictInput):
    immediately = serializers.BooleanField(default=False)


class SubscriptionCancelView(APIView):
    permission_classes = [AdminScope]

    @extend_schema(
        summary="Cancel a subscription",
        description="At the end of the current period, or `immediately`: the last period then "
        "ends now and its invoice bills the part used (base fee and commitment prorated by days).",
        request=CancelInput,
        responses=_Subscription,
    )
    def post(self, request: Request, subscription_id: UUID) -> Response:
        subscription_get(subscription_id=subscription_id, scope_tenant_id=_scope(request))
        data = CancelInput(data=request.data)
        data.is_valid(raise_exception=True)
        subscription = subscription_cancel(
            subscription_id=subscription_id, immediately=data.validated_data["immediately"]
        )
        return Response(subscription_dict(subscription))


def _period_start(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return utc_time_parse(raw, field="period_start")
    except ValueError as exc:
        raise BillingInvalid(str(exc), field="period_start") from exc


class InvoiceListView(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        summary="List invoices",
        parameters=[
            OpenApiParameter("tenant", str),
            OpenApiParameter("status", str, enum=[s.value for s in Invoice.Status]),
            OpenApiParameter("period_start", OpenApiTypes.DATETIME),
        ],
        responses=InvoiceSummaryOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        tenant = params.get("tenant")
        status = params.get("status")
        if status and status not in Invoice.Status.values:
            raise BillingInvalid(
                f"status: {status!r} is not one of {', '.join(Invoice.Status.values)}",
                field="status",
            )
        rows = invoice_list(
            scope_tenant_id=_scope(request),
            tenant_id=_tenant(request, tenant).id if tenant else None,
            status=status,
            period_start=_period_start(params.get("period_start")),
        )
        return Response([invoice_summary(i) for i in rows[:1000]])


class InvoiceDetailView(APIView):
    permission_classes = [ReadScope]

    @extend_schema(summary="Get an invoice with its lines", responses=InvoiceOutput)
    def get(self, request: Request, invoice_id: UUID) -> Response:
        return Response(
            invoice_dict(invoice_get(invoice_id=invoice_id, scope_tenant_id=_scope(request)))
        )


class InvoicePdfView(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        summary="Download an invoice as PDF",
        responses={(200, "application/pdf"): OpenApiTypes.BINARY},
    )
    def get(self, request: Request, invoice_id: UUID) -> HttpResponse:
        invoice = invoice_get(invoice_id=invoice_id, scope_tenant_id=_scope(request))
        response = HttpResponse(invoice_pdf_for_download(invoice), content_type="application/pdf")
        name = invoice.number or f"draft-{invoice.id}"
        response["Content-Disposition"] = f'inline; filename="{name}.pdf"'
        return response


# Finalizing, voiding, crediting and recording payment are finance's: a tenant-bound key, even
# an admin one a partner made in the portal, gets 403 here, on its own invoices too.
class InvoiceFinalizeView(APIView):
    permission_classes = [OperatorAdminScope]

    @extend_schema(summary="Finalize a draft now", request=None, responses=InvoiceOutput)
    def post(self, request: Request, invoice_id: UUID) -> Response:
        invoice_get(invoice_id=invoice_id, scope_tenant_id=_scope(request))
        NoInput.check(request)
        invoice = invoice_finalize(invoice_id=invoice_id)
        return Response(invoice_dict(invoice_get(invoice_id=invoice.id, scope_tenant_id=None)))


class VoidInput(StrictInput):
    reason = serializers.CharField(max_length=500)
    reissue = serializers.BooleanField(default=False)


class InvoiceVoidView(APIView):
    permission_classes = [OperatorAdminScope]

    @extend_schema(
        summary="Void an invoice (and reissue it)",
        description="The void invoice keeps its number and its credits go back to their grants; "
        "with `reissue` the answer is the new draft for the same period.",
        request=VoidInput,
        responses=InvoiceOutput,
    )
    def post(self, request: Request, invoice_id: UUID) -> Response:
        invoice_get(invoice_id=invoice_id, scope_tenant_id=_scope(request))
        data = VoidInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = invoice_void(invoice_id=invoice_id, **data.validated_data)
        return Response(invoice_dict(invoice_get(invoice_id=result.id, scope_tenant_id=None)))


class InvoicePaidView(APIView):
    permission_classes = [OperatorAdminScope]

    @extend_schema(summary="Mark a finalized invoice paid", request=None, responses=InvoiceOutput)
    def post(self, request: Request, invoice_id: UUID) -> Response:
        invoice_get(invoice_id=invoice_id, scope_tenant_id=_scope(request))
        NoInput.check(request)
        invoice_mark_paid(invoice_id=invoice_id)
        return Response(invoice_dict(invoice_get(invoice_id=invoice_id, scope_tenant_id=None)))


class CreditNoteInput(StrictInput):
    amount = serializers.DecimalField(max_digits=20, decimal_places=4, min_value=Decimal("0.0001"))
    reason = serializers.CharField(max_length=500)


class InvoiceCreditNoteView(APIView):
    permission_classes = [OperatorAdminScope]

    @extend_schema(
        summary="Issue a credit note",
        description="The answer is the invoice with its credit notes, the new one last.",
        request=CreditNoteInput,
        responses={201: InvoiceOutput},
    )
    def post(self, request: Request, invoice_id: UUID) -> Response:
        invoice_get(invoice_id=invoice_id, scope_tenant_id=_scope(request))
        data = CreditNoteInput(data=request.data)
        data.is_valid(raise_exception=True)
        credit_note_issue(invoice_id=invoice_id, **data.validated_data)
        return Response(
            invoice_dict(invoice_get(invoice_id=invoice_id, scope_tenant_id=None)), status=201
        )


class InvoicePreviewView(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        summary="The upcoming invoice of the current period (not stored)",
        parameters=[OpenApiParameter("tenant", str, required=True)],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        tenant = request.query_params.get("tenant") or principal_of(request).tenant_external_id
        if not tenant:
            raise BillingInvalid("tenant: required with an operator key", field="tenant")
        preview = invoice_preview(tenant_id=_tenant(request, tenant).id)
        if preview is None:
            raise BillingInvalid(f"tenant: {tenant!r} has no open subscription", field="tenant")
        return Response(preview_dict(preview))


class PurchaseInput(StrictInput):
    pack = serializers.CharField(max_length=64)


class CreditPurchaseView(APIView):
    permission_classes = [AdminScope]
    error_statuses = (422,)  # an Idempotency-Key reused with another body

    @extend_schema(
        summary="Buy a credit pack",
        description="Needs an `Idempotency-Key` header: the same key and body answer the first "
        "purchase again; the same key with another body is 422. Issues a finalized purchase "
        "invoice for the pack's price and a grant of its credits.",
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True)
        ],
        request=PurchaseInput,
        responses={201: InvoiceOutput},
    )
    def post(self, request: Request, external_id: str) -> Response:
        tenant = _tenant(request, external_id)
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key or len(key) > 200:
            raise IdempotencyKeyMissing(
                "Idempotency-Key: required (1-200 characters), so a retried purchase is made once",
                field="Idempotency-Key",
            )
        data = PurchaseInput(data=request.data)
        data.is_valid(raise_exception=True)

        def purchase() -> tuple[int, Any]:
            pack = credit_pack_get(code=data.validated_data["pack"])
            invoice = credit_pack_purchase(tenant=tenant, pack=pack)
            return 201, invoice_dict(invoice_get(invoice_id=invoice.id, scope_tenant_id=None))

        status, body = idempotent(
            scope=f"credit-purchase:{tenant.id}",
            key=key,
            request=dict(data.validated_data),
            work=purchase,
        )
        return Response(body, status=status)


class CreditsView(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        summary="A tenant's credit balance and grants", responses={200: OpenApiTypes.OBJECT}
    )
    def get(self, request: Request, external_id: str) -> Response:
        tenant = _tenant(request, external_id)
        return Response(credits_dict(tenant_credits(tenant_id=tenant.id, currency=tenant.currency)))
