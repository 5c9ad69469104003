"""The one error family. Each app subclasses ApplicationError with stable codes; the DRF
exception handler in ``apps.core.api.exceptions`` turns them into JSON."""

from typing import Any


class ApplicationError(Exception):
    """A failure the caller can act on. ``code`` is stable API; ``message`` names the field and
    the bad value; ``field`` is the dotted path of the offending input, when there is one."""

    code = "application_error"
    status_code = 400

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        self.extra = extra or {}

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        body.update(self.extra)
        return body


class ValidationFailed(ApplicationError):
    code = "invalid"
    status_code = 400


class NotFound(ApplicationError):
    code = "not_found"
    status_code = 404


class Conflict(ApplicationError):
    code = "conflict"
    status_code = 409


class PayloadTooLarge(ApplicationError):
    code = "payload_too_large"
    status_code = 413
