"""Request middleware of our own."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.core.audit import audit_request_bind, audit_request_unbind
from apps.core.logging import request_id_accept, request_id_var


class RequestIdMiddleware:
    """Gives each request an id (the caller's ``X-Request-ID`` when sane, else a new one) that
    every log record of the request carries and the response returns in ``X-Request-ID``.

    First in ``MIDDLEWARE``, so that what the other middleware log carries the id too. It also
    binds the request as the context of audit entries (``apps.core.audit``): who is signed in,
    or which API key authenticated, is the actor of what the request changes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_accept(request.headers.get("X-Request-ID"))
        token = request_id_var.set(request_id)
        request.percall_request_id = request_id  # type: ignore[attr-defined]  # for late logs
        audit = audit_request_bind(request)
        try:
            response = self.get_response(request)
        finally:
            audit_request_unbind(audit)
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class ApiNulRefusedMiddleware:
    """Refuses, with the API's 400, a call under ``/api/`` whose path or query string has a
    NUL character (``%00``): no id, name or parameter of ours can hold one, and PostgreSQL
    refuses it in every text value, so a lookup would fail as a server error. Request bodies
    are checked where they are parsed (DRF's fields, the event decoder)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            field = _nul_field(request)
            if field is not None:
                message = f"{field}: contains a NUL character (%00), which no value may hold"
                body = {"code": "invalid", "message": message, "field": field}
                return JsonResponse({"error": body}, status=400)
        return self.get_response(request)


def _nul_field(request: HttpRequest) -> str | None:
    if "\x00" in request.path:
        return "path"
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            return name.replace("\x00", "")
    return None
