"""One error shape for the whole API: {"error": {"code", "message", "field"?}}."""

import pytest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions

from apps.core.api.exceptions import exception_handler
from apps.core.errors import (
    ApplicationError,
    Conflict,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)


class InvoiceNotDraft(Conflict):
    code = "invoice_not_draft"


def handle(exc: Exception):
    return exception_handler(exc, {"view": None, "request": None})


def test_an_application_error_names_code_message_and_field():
    error = ApplicationError("currency: 'usd' is not an ISO 4217 code", field="currency")

    assert error.as_dict() == {
        "code": "application_error",
        "message": "currency: 'usd' is not an ISO 4217 code",
        "field": "currency",
    }


def test_without_a_field_there_is_no_field_key_and_extra_is_merged():
    error = ApplicationError("quota exceeded", code="quota", extra={"limit": 5})

    assert error.as_dict() == {"code": "quota", "message": "quota exceeded", "limit": 5}


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ApplicationError("x: bad", field="x"), 400, "application_error"),
        (ValidationFailed("x: bad", field="x"), 400, "invalid"),
        (NotFound("tenant 'nope' not found", field="tenant"), 404, "not_found"),
        (InvoiceNotDraft("invoice: already final", field="invoice"), 409, "invoice_not_draft"),
        (PayloadTooLarge("body: too large"), 413, "payload_too_large"),
    ],
)
def test_application_errors_map_to_their_status_and_code(error, status, code):
    response = handle(error)

    assert response.status_code == status
    assert response.data == {"error": error.as_dict()}
    assert response.data["error"]["code"] == code


def test_a_drf_validation_error_names_the_first_field():
    response = handle(exceptions.ValidationError({"currency": ["Ensure this field has 3 chars."]}))

    assert response.status_code == 400
    error = response.data["error"]
    assert error["code"] == "invalid"
    assert error["field"] == "currency"
    assert error["message"] == "currency: Ensure this field has 3 chars."
    assert error["errors"] == {"currency": ["Ensure this field has 3 chars."]}


def test_a_nested_validation_error_gets_a_dotted_path():
    detail = {"lines": [{}, {"amount": ["A valid number is required."]}]}

    error = handle(exceptions.ValidationError(detail)).data["error"]

    assert error["field"] == "lines[1].amount"
    assert error["message"] == "lines[1].amount: A valid number is required."


def test_non_field_errors_have_no_field():
    detail = {"non_field_errors": ["from and to are both required"]}

    error = handle(exceptions.ValidationError(detail)).data["error"]

    assert "field" not in error
    assert error["message"] == "from and to are both required"


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (Http404(), 404, "not_found"),
        (DjangoPermissionDenied(), 403, "permission_denied"),
        (exceptions.NotAuthenticated(), 401, "not_authenticated"),
        (
            exceptions.PermissionDenied("this API key lacks the 'read' scope"),
            403,
            "permission_denied",
        ),
    ],
)
def test_other_api_errors_share_the_shape(exc, status, code):
    response = handle(exc)

    assert response.status_code == status
    assert set(response.data) == {"error"}
    assert set(response.data["error"]) == {"code", "message"}
    assert response.data["error"]["code"] == code


def test_anything_else_is_left_to_django():
    assert handle(ValueError("a bug")) is None


# --- end to end through real views ------------------------------------------------------------


@pytest.mark.django_db
def test_views_answer_in_the_same_shape(make_tenant, make_key, api):
    make_tenant("acme")
    client = api(make_key())

    # an ApplicationError raised by a selector
    unknown = client.get(
        "/api/v1/usage", {"tenant": "nope", "from": "2026-11-20T10:00Z", "to": "2026-11-20T11:00Z"}
    )
    # a DRF serializer's ValidationError
    unnamed = client.post("/api/v1/tenants", {"external_id": "globex", "currency": "EUR"})
    # an ApplicationError raised by a service
    bad_currency = client.post(
        "/api/v1/tenants", {"external_id": "globex", "name": "Globex", "currency": "ZZZ"}
    )

    assert unknown.status_code == 404
    assert unknown.json()["error"] == {
        "code": "tenant_not_found",
        "message": "tenant 'nope' not found",
        "field": "tenant",
    }
    assert unnamed.status_code == 400
    assert unnamed.json()["error"]["field"] == "name"
    assert unnamed.json()["error"]["message"].startswith("name: ")
    assert bad_currency.status_code == 400
    assert bad_currency.json()["error"]["field"] == "currency"
    assert "'ZZZ'" in bad_currency.json()["error"]["message"]


@pytest.mark.django_db
def test_an_unauthenticated_call_gets_the_shape_too(client):
    response = client.get("/api/v1/usage")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.django_db
def test_a_malformed_id_in_an_api_path_is_the_api_error_not_an_html_page(client):
    """Given an invoice id that is not a UUID (no route matches it), the answer is the API's
    JSON 404, as for an id that matches nothing; outside /api/ the HTML page stays."""
    response = client.get("/api/v1/invoices/not-a-uuid/pdf")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"
    assert "/api/v1/invoices/not-a-uuid/pdf" in response.json()["error"]["message"]
    page = client.get("/no-such-page")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")


def test_every_operation_documents_the_error_body_for_its_error_statuses():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    events = schema["paths"]["/api/v1/events"]["post"]["responses"]
    tenants = schema["paths"]["/api/v1/tenants"]["get"]["responses"]
    invoice = schema["paths"]["/api/v1/invoices/{invoice_id}/finalize"]["post"]["responses"]

    assert {"200", "207", "400", "401", "403", "404", "409", "413", "429"} <= set(events)
    assert set(tenants) == {"200", "400", "401", "403", "429"}
    assert {"404", "409"} <= set(invoice)
    assert "415" in schema["paths"]["/api/v1/tenants"]["post"]["responses"]
    assert "415" not in events
    error = invoice["409"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorOut"}


def test_a_model_validation_error_from_a_service_is_a_400_naming_the_field():
    """A full_clean() in a service that refuses what the input checks let through is the
    caller's input: a 400 naming the field, not a server error."""
    from django.core.exceptions import ValidationError as DjangoValidationError

    response = handle(
        DjangoValidationError({"scope_value": ["Ensure this value has at most 200 characters."]})
    )

    assert response.status_code == 400
    assert response.data["error"]["code"] == "invalid"
    assert response.data["error"]["field"] == "scope_value"
    assert "at most 200 characters" in response.data["error"]["message"]


def test_a_model_validation_error_of_no_one_field_names_no_field():
    from django.core.exceptions import ValidationError as DjangoValidationError

    response = handle(DjangoValidationError({"__all__": ["Periods must not overlap."]}))

    assert response.status_code == 400
    assert "field" not in response.data["error"]
    assert response.data["error"]["message"] == "Periods must not overlap."
