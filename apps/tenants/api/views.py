from decimal import Decimal

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.serializers import StrictInput
from apps.tenants.api.authentication import OperatorAdminScope, ReadScope, principal_of
from apps.tenants.selectors import tenant_get, tenant_list
from apps.tenants.services.tenants import tenant_create


class TenantInput(StrictInput):
    external_id = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
    name = serializers.CharField(max_length=200)
    currency = serializers.CharField(min_length=3, max_length=3)
    timezone = serializers.CharField(max_length=64, default="UTC")
    billing_email = serializers.EmailField(required=False, allow_blank=True, default="")
    tax_rate = serializers.DecimalField(
        max_digits=7,
        decimal_places=6,
        min_value=Decimal("0"),
        max_value=Decimal("1"),
        default=Decimal("0"),
    )


class TenantOutput(serializers.Serializer):
    external_id = serializers.CharField()
    name = serializers.CharField()
    currency = serializers.CharField()
    timezone = serializers.CharField()
    billing_email = serializers.CharField(help_text="an email address, or empty")
    tax_rate = serializers.DecimalField(max_digits=7, decimal_places=6)
    status = serializers.CharField()
    registered_at = serializers.DateTimeField()
    first_call_at = serializers.DateTimeField(allow_null=True)


class TenantListView(APIView):
    def get_permissions(self) -> list:
        return [OperatorAdminScope()] if self.request.method == "POST" else [ReadScope()]

    @extend_schema(responses=TenantOutput(many=True), summary="List tenants")
    def get(self, request: Request) -> Response:
        tenants = tenant_list(scope_tenant_id=principal_of(request).tenant_id)
        return Response(TenantOutput(tenants, many=True).data)

    @extend_schema(request=TenantInput, responses={201: TenantOutput}, summary="Create a tenant")
    def post(self, request: Request) -> Response:
        data = TenantInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        tenant = tenant_create(timezone_name=values.pop("timezone"), **values)
        return Response(TenantOutput(tenant).data, status=201)


class TenantDetailView(APIView):
    permission_classes = [ReadScope]

    @extend_schema(responses=TenantOutput, summary="Get one tenant")
    def get(self, request: Request, external_id: str) -> Response:
        tenant = tenant_get(
            external_id=external_id, scope_tenant_id=principal_of(request).tenant_id
        )
        return Response(TenantOutput(tenant).data)
