from apps.core.errors import ApplicationError, Conflict, NotFound


class TenantNotFound(NotFound):
    code = "tenant_not_found"


class TenantExists(Conflict):
    code = "tenant_exists"


class TenantInvalid(ApplicationError):
    code = "invalid"


class ApiKeyInvalid(ApplicationError):
    code = "api_key_invalid"
