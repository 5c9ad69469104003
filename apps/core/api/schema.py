"""The OpenAPI document's error answers, in one place as the exception handler is.

Every operation documents the error body ``{"error": {"code", "message", "field"?, ...}}``
(``apps.core.api.exceptions``) for the statuses any call can get: 400 (invalid input), 401
(no or unknown key), 403 (the key lacks the scope, or is tenant-bound where an operator key
is needed), 429 (the key's or the tenant's rate); 404 where the call names something (a path
id, a ``tenant`` query, a body); 409 on writes (a state that does not allow the change, a
duplicate) and 415 where DRF parses their body (not JSON). A view adds the statuses only it
answers in ``error_statuses``, e.g. 413 for a body over the limit.
"""

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

ALWAYS = (400, 401, 403, 429)
NAMES_SOMETHING = 404
ON_WRITES = 409
UNSUPPORTED_BODY = 415  # DRF's parsers: a body that is not JSON
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


# Declared for the document only (never used to render): a field named ``errors`` would
# shadow ``Serializer.errors`` on a class statement.
ErrorDetailOut = inline_serializer(
    "ErrorDetailOut",
    {
        "code": serializers.CharField(help_text="stable, per app: `invalid`, `not_found`, ..."),
        "message": serializers.CharField(help_text="names the field and the bad value"),
        "field": serializers.CharField(required=False, help_text="dotted path of the bad input"),
        "errors": serializers.JSONField(
            required=False, help_text="every field's problems, on invalid input"
        ),
    },
)
ErrorOut = inline_serializer("ErrorOut", {"error": ErrorDetailOut})


class ApiSchema(AutoSchema):
    """drf-spectacular's schema with the error answers above added to every operation."""

    def _error_statuses(self) -> list[int]:
        statuses = set(ALWAYS) | set(getattr(self.view, "error_statuses", ()))
        names_something = (
            "{" in self.path
            or self.method not in SAFE_METHODS
            or bool(self.get_override_parameters())
        )
        if names_something:
            statuses.add(NAMES_SOMETHING)
        if self.method not in SAFE_METHODS:
            statuses.add(ON_WRITES)
            if self.view.parser_classes and self.get_request_serializer() is not None:
                statuses.add(UNSUPPORTED_BODY)
        return sorted(statuses)

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for status in self._error_statuses():
            responses.setdefault(
                str(status), self._get_response_for_code(ErrorOut, str(status), direction=direction)
            )
        return responses


def results_of(
    serializer: type[serializers.Serializer], name: str, **fields: serializers.Field
) -> serializers.Serializer:
    """The schema of a ``{"results": [...], ...}`` answer, named ``name`` in the document."""
    return inline_serializer(name, {**fields, "results": serializer(many=True)})
