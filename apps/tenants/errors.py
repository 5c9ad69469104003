from apps.core.errors import ApplicationError, Conflict, NotFound


class TenantNotFound(NotFound):
    code = "tenant_not_found"


class TenantExists(Conflict):
    code = "tenant_exists"


class TenantInvalid(ApplicationError):
    code = "invalid"


class ApiKeyInvalid(ApplicationError):
    code = "api_key_invalid"


class MembershipNotFound(NotFound):
    code = "membership_not_found"


class MembershipExists(Conflict):
    code = "membership_exists"


class MembershipInvalid(ApplicationError):
    code = "membership_invalid"


class LastOwner(Conflict):
    """Removing or demoting the tenant's only owner would leave nobody to manage its team."""

    code = "last_owner"
