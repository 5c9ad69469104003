"""Maps every error to one JSON shape: ``{"error": {"code", "message", "field"?, ...}}``."""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.errors import ApplicationError


def _first_field_error(detail: Any, prefix: str = "") -> tuple[str | None, str]:
    """Flatten DRF's nested validation detail to the first (dotted field path, message)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            path = key if not prefix else f"{prefix}.{key}"
            if key in ("non_field_errors", "__all__"):  # DRF's and Django's "no one field"
                path = prefix
            return _first_field_error(value, path)
    if isinstance(detail, list):
        if detail and isinstance(detail[0], dict | list):
            for index, item in enumerate(detail):
                if item:
                    return _first_field_error(item, f"{prefix}[{index}]")
        if detail:
            return _first_field_error(detail[0], prefix)
    return (prefix or None), str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response({"error": exc.as_dict()}, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        # A model's full_clean() in a service refused a value the input checks let through:
        # the caller's input, so a 400 naming the field, never a server error.
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_field_error(exc.detail)
        body: dict[str, Any] = {"code": "invalid", "message": message}
        if field:
            body["field"] = field
            body["message"] = f"{field}: {message}"
        body["errors"] = exc.detail
        response.data = {"error": body}
        response.status_code = status.HTTP_400_BAD_REQUEST
        return response
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        response.data = {"error": {"code": code, "message": str(exc.detail)}}
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The project's 404 (``handler404``): under ``/api/`` the API's error body, so that a
    malformed id (``/api/v1/invoices/not-a-uuid``, which no route matches) answers like a
    missing one; the HTML page everywhere else."""
    if request.path.startswith("/api/"):
        message = f"{request.path}: no such API resource"
        return JsonResponse({"error": {"code": "not_found", "message": message}}, status=404)
    return page_not_found(request, exception or Http404())
