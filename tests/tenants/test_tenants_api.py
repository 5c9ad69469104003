"""POST/GET /api/v1/tenants: creation with field-named errors, duplicates, who may create."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.tenants.models import Tenant

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
URL = "/api/v1/tenants"
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture
def operator_admin(make_key, api):
    return api(make_key(scopes=["admin"]))


def tenant_body(**changes):
    body = {
        "external_id": "acme",
        "name": "Acme Robotics",
        "currency": "EUR",
        "timezone": "Europe/Paris",
        "billing_email": "billing@acme.test",
        "tax_rate": "0.2",
    }
    return {key: value for key, value in (body | changes).items() if value is not None}


def test_operator_admin_creates_a_tenant(operator_admin):
    response = operator_admin.post(URL, tenant_body())

    assert response.status_code == 201
    assert response.json() == {
        "external_id": "acme",
        "name": "Acme Robotics",
        "currency": "EUR",
        "timezone": "Europe/Paris",
        "billing_email": "billing@acme.test",
        "tax_rate": "0.200000",
        "status": "active",
        "registered_at": "2026-11-20T12:30:00Z",
        "first_call_at": None,
    }
    tenant = Tenant.objects.get()
    assert (tenant.currency, tenant.timezone) == ("EUR", "Europe/Paris")
    assert tenant.tax_rate == Decimal("0.2")
    assert tenant.registered_at == NOW


def test_optional_fields_default_to_utc_no_tax_and_no_email(operator_admin):
    body = {"external_id": "tiny", "name": "Tiny", "currency": "JPY"}

    response = operator_admin.post(URL, body)

    assert response.status_code == 201
    tenant = Tenant.objects.get()
    assert (tenant.timezone, tenant.tax_rate, tenant.billing_email) == ("UTC", Decimal("0"), "")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"currency": "usd"}, "currency", id="lower-case-currency"),
        pytest.param({"currency": "XXY"}, "currency", id="unknown-currency"),
        pytest.param({"currency": "EURO"}, "currency", id="four-letter-currency"),
        pytest.param({"timezone": "Mars/Olympus_Mons"}, "timezone", id="unknown-timezone"),
        pytest.param({"timezone": "../../etc/passwd"}, "timezone", id="path-as-timezone"),
        pytest.param({"tax_rate": "1.01"}, "tax_rate", id="tax-rate-over-1"),
        pytest.param({"tax_rate": "-0.1"}, "tax_rate", id="negative-tax-rate"),
        pytest.param({"tax_rate": "NaN"}, "tax_rate", id="nan-tax-rate"),
        pytest.param({"external_id": "has space"}, "external_id", id="external-id-space"),
        pytest.param({"external_id": "x" * 65}, "external_id", id="external-id-too-long"),
        pytest.param({"external_id": "-leading"}, "external_id", id="external-id-leading-dash"),
        pytest.param({"external_id": None}, "external_id", id="missing-external-id"),
        pytest.param({"name": None}, "name", id="missing-name"),
        pytest.param({"billing_email": "not-an-email"}, "billing_email", id="bad-email"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_creates_nothing(operator_admin, changes, field):
    response = operator_admin.post(URL, tenant_body(**changes))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == field
    assert error["message"].startswith(f"{field}:")
    assert not Tenant.objects.exists()


def test_unknown_currency_message_names_the_bad_value(operator_admin):
    response = operator_admin.post(URL, tenant_body(currency="XXY"))

    assert "'XXY'" in response.json()["error"]["message"]


def test_tax_rate_of_exactly_1_is_allowed(operator_admin):
    assert operator_admin.post(URL, tenant_body(tax_rate="1")).status_code == 201


def test_duplicate_external_id_is_a_409_and_the_first_tenant_is_unchanged(operator_admin):
    operator_admin.post(URL, tenant_body())

    response = operator_admin.post(URL, tenant_body(name="Impostor", currency="USD"))

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "tenant_exists"
    assert response.json()["error"]["field"] == "external_id"
    tenant = Tenant.objects.get()
    assert (tenant.name, tenant.currency) == ("Acme Robotics", "EUR")


@pytest.mark.parametrize(
    ("scopes", "bound"),
    [
        pytest.param(["admin"], True, id="tenant-bound-admin"),
        pytest.param(["ingest", "read"], False, id="operator-without-admin"),
    ],
)
def test_only_an_operator_wide_admin_key_creates_tenants(make_tenant, make_key, api, scopes, bound):
    home = make_tenant("home")
    client = api(make_key(scopes=scopes, tenant=home if bound else None))

    response = client.post(URL, tenant_body(external_id="other"))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert list(Tenant.objects.values_list("external_id", flat=True)) == ["home"]


def test_operator_lists_every_tenant_by_external_id(make_tenant, make_key, api):
    for external_id in ("zeta", "acme", "mid"):
        make_tenant(external_id)

    response = api(make_key(scopes=["read"])).get(URL)

    assert response.status_code == 200
    assert [t["external_id"] for t in response.json()] == ["acme", "mid", "zeta"]


def test_get_one_tenant_by_external_id(make_tenant, make_key, api):
    make_tenant("acme", name="Acme Robotics", currency="GBP", tax_rate="0.175")

    response = api(make_key(scopes=["read"])).get(f"{URL}/acme")

    assert response.status_code == 200
    body = response.json()
    assert [body["name"], body["currency"], body["tax_rate"]] == [
        "Acme Robotics",
        "GBP",
        "0.175000",
    ]


def test_unknown_tenant_is_a_404(make_key, api):
    response = api(make_key(scopes=["read"])).get(f"{URL}/nobody")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "tenant_not_found"


def test_reading_tenants_needs_the_read_scope(make_tenant, make_key, api):
    make_tenant("acme")
    client = api(make_key(scopes=["ingest"]))

    assert client.get(URL).status_code == 403
    assert client.get(f"{URL}/acme").status_code == 403
