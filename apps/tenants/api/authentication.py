"""``Authorization: Bearer <key>`` for the whole API, and scope permissions."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from apps.core.audit import audit_actor_set
from apps.tenants.models import ApiKey
from apps.tenants.services.api_keys import api_key_authenticate


class ApiPrincipal:
    """The caller behind an API key: operator-wide (``tenant_id`` None) or bound to a tenant."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.tenant_id = api_key.tenant_id
        self.tenant_external_id = api_key.tenant.external_id if api_key.tenant else None

    def __str__(self) -> str:
        return f"api-key:{self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiPrincipal, ApiKey] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization: expected 'Bearer <api key>'")
        try:
            plaintext = header[1].decode()
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Authorization: the key is not text") from exc
        api_key = api_key_authenticate(plaintext=plaintext)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Authorization: unknown or revoked API key")
        audit_actor_set(f"api-key:{api_key.prefix}")  # the actor of what this request changes
        return ApiPrincipal(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


def principal_of(request: Request) -> ApiPrincipal:
    principal = request.user
    assert isinstance(principal, ApiPrincipal)
    return principal


class _ScopeRequired(permissions.BasePermission):
    scope = ""
    message = "this API key lacks the required scope"

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, ApiPrincipal):
            return False
        self.message = f"this API key lacks the {self.scope!r} scope"
        return principal.api_key.has_scope(self.scope)


class IngestScope(_ScopeRequired):
    scope = ApiKey.Scope.INGEST


class ReadScope(_ScopeRequired):
    scope = ApiKey.Scope.READ


class AdminScope(_ScopeRequired):
    scope = ApiKey.Scope.ADMIN


class OperatorAdminScope(AdminScope):
    """Admin scope on an operator-wide key: tenant-bound keys never manage other tenants."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        self.message = "this action needs an operator-wide admin key"
        return principal_of(request).tenant_id is None


class OperatorReadScope(ReadScope):
    """Read scope on an operator-wide key: for the operator's own figures (what calls cost,
    chargeback), which no tenant-bound key may read."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        self.message = "this read needs an operator-wide key"
        return principal_of(request).tenant_id is None


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Describes ``Authorization: Bearer <key>`` in the OpenAPI document."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A Percall API key (pc_...)"}
