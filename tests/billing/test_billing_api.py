"""The billing API: subscriptions, invoices and their actions, credit purchases (idempotent)
and balances, with errors that name the field."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.billing.models import CreditGrant, CreditNote, IdempotentRequest, Invoice, Subscription
from apps.billing.services.runs import billing_run
from apps.tenants.services.api_keys import api_key_create
from tests.billing.billing_setup import catalog_load, subscribe

NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)
OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture(autouse=True)
def catalog(db):
    catalog_load()


@pytest.fixture
def admin(make_key, api):
    return api(make_key(scopes=("read", "admin")))


def test_subscribe_over_the_api(make_tenant, admin):
    make_tenant("acme")

    response = admin.post(
        "/api/v1/subscriptions",
        {"tenant": "acme", "plan": "growth", "start": "2026-10-14T00:00:00Z"},
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["tenant"], body["plan"], body["started_at"]) == (
        "acme",
        "growth",
        "2026-10-14T00:00:00+00:00",
    )
    assert Subscription.objects.get().plan.code == "growth"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"tenant": "yen-co", "plan": "growth"}, "plan", id="currency-mismatch"),
        pytest.param({"tenant": "acme", "plan": "gold"}, "plan", id="unknown-plan"),
        pytest.param(
            {"tenant": "acme", "plan": "growth", "start": "soon"}, "start", id="bad-start"
        ),
    ],
)
def test_a_bad_subscription_is_a_400_naming_the_field(make_tenant, admin, payload, field):
    make_tenant("acme")
    make_tenant("yen-co", currency="JPY")

    response = admin.post("/api/v1/subscriptions", {"start": "2026-10-01T00:00:00Z", **payload})

    assert response.status_code in (400, 404), response.content
    assert response.json()["error"]["field"] == field
    assert not Subscription.objects.exists()


def _finalized_october(make_tenant, tax_rate="0"):
    acme = make_tenant("acme", tax_rate=tax_rate)
    subscribe(acme, "growth", OCT)
    billing_run(as_of=NOV + timedelta(hours=2))
    return Invoice.objects.get(tenant=acme)


def test_invoice_list_and_detail_show_amounts_with_the_currency_decimals(make_tenant, admin):
    invoice = _finalized_october(make_tenant, tax_rate="0.2")

    listed = admin.get("/api/v1/invoices", {"tenant": "acme", "status": "finalized"}).json()
    detail = admin.get(f"/api/v1/invoices/{invoice.id}").json()

    assert [i["number"] for i in listed] == ["PC-2026-000001"]
    assert "lines" not in listed[0]
    # 99.00 + 20 % = 118.80
    assert (detail["subtotal"], detail["tax"], detail["total"], detail["tax_rate"]) == (
        "99.00",
        "19.80",
        "118.80",
        "0.2",
    )
    assert detail["lines"] == [
        {
            "kind": "base_fee",
            "description": "Growth base fee",
            "meter": "",
            "quantity": None,
            "unit_price": None,
            "amount": "99.00",
            "tiers": [],
            "dimensions": {},
            "adjusts_period_start": None,
        },
        *[line for line in detail["lines"] if line["kind"] == "usage"],
    ]
    assert {line["amount"] for line in detail["lines"][1:]} == {"0.00"}
    assert admin.get("/api/v1/invoices", {"status": "paid"}).json() == []
    bad = admin.get("/api/v1/invoices", {"status": "sent"})
    assert (bad.status_code, bad.json()["error"]["field"]) == (400, "status")


def test_invoice_actions_over_the_api(make_tenant, admin):
    invoice = _finalized_october(make_tenant)

    again = admin.post(f"/api/v1/invoices/{invoice.id}/finalize")
    noted = admin.post(
        f"/api/v1/invoices/{invoice.id}/credit-notes", {"amount": "10.00", "reason": "outage"}
    )
    voided = admin.post(f"/api/v1/invoices/{invoice.id}/void", {"reason": "test", "reissue": True})

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invoice_not_draft"
    assert noted.status_code == 201
    assert noted.json()["credit_notes"][0]["amount"] == "10.00"
    assert voided.status_code == 200
    assert voided.json()["status"] == "draft"
    assert voided.json()["reissue_of"] == str(invoice.id)
    assert Invoice.objects.get(id=invoice.id).status == "void"


def test_the_pdf_downloads(make_tenant, admin):
    invoice = _finalized_october(make_tenant)

    response = admin.get(f"/api/v1/invoices/{invoice.id}/pdf")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert 'filename="PC-2026-000001.pdf"' in response["Content-Disposition"]


def test_the_preview_prices_the_current_period_without_storing_it(make_tenant, admin):
    acme = make_tenant("acme")
    subscribe(acme, "growth", OCT)

    preview = admin.get("/api/v1/invoices/preview", {"tenant": "acme"}).json()

    assert (preview["period_start"], preview["period_end"]) == (
        "2026-11-01T00:00:00+00:00",
        "2026-12-01T00:00:00+00:00",
    )
    assert preview["subtotal"] == "99.00"
    assert not Invoice.objects.filter(period_start=NOV).exists()


def test_buying_a_pack_is_idempotent_per_key(make_tenant, admin):
    make_tenant("acme", tax_rate="0.1")
    url = "/api/v1/tenants/acme/credit-purchases"

    missing = admin.post(url, {"pack": "pack-100"})
    first = admin.post(url, {"pack": "pack-100"}, **{"Idempotency-Key": "buy-1"})
    again = admin.post(url, {"pack": "pack-100"}, **{"Idempotency-Key": "buy-1"})
    other = admin.post(url, {"pack": "pack-200"}, **{"Idempotency-Key": "buy-1"})

    assert missing.status_code == 400
    assert missing.json()["error"]["field"] == "Idempotency-Key"
    assert first.status_code == 201, first.content
    # 90.00 + 10 % tax = 99.00
    assert (first.json()["kind"], first.json()["total"]) == ("credit_purchase", "99.00")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert other.status_code == 422
    assert Invoice.objects.filter(kind="credit_purchase").count() == 1
    assert CreditGrant.objects.count() == 1
    assert IdempotentRequest.objects.count() == 1


def test_credits_show_balance_grants_and_what_they_paid(make_tenant, admin):
    make_tenant("acme")
    admin.post(
        "/api/v1/tenants/acme/credit-purchases", {"pack": "pack-100"}, **{"Idempotency-Key": "k1"}
    )
    tenant = Invoice.objects.get().tenant
    subscribe(tenant, "growth", datetime(2026, 11, 1, tzinfo=UTC))

    body = admin.get("/api/v1/tenants/acme/credits").json()

    assert (body["currency"], body["balance"]) == ("USD", "100.00")
    (grant,) = body["grants"]
    assert (grant["amount"], grant["remaining"], grant["consumed"], grant["usable"]) == (
        "100.00",
        "100.00",
        "0.00",
        True,
    )
    assert grant["expires_at"] == (NOW + timedelta(days=30)).isoformat()


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("finalize", None),
        ("void", {"reason": "we say so", "reissue": True}),
        ("mark-paid", None),
        ("credit-notes", {"amount": "99.00", "reason": "we say so"}),
    ],
)
def test_a_partners_admin_key_cannot_settle_its_own_invoice(make_tenant, api, action, body):
    """What a partner owes is finance's to change: a tenant-bound key with every scope (as the
    portal lets a partner make) is refused finalizing, voiding, crediting or marking paid its
    own invoice, and the invoice is as it was."""
    invoice = _finalized_october(make_tenant)
    own = api(api_key_create(name="partner", scopes=["ingest", "read", "admin"],
                             tenant=invoice.tenant).plaintext)  # fmt: skip
    before = Invoice.objects.filter(id=invoice.id).values().get()

    response = own.post(f"/api/v1/invoices/{invoice.id}/{action}", body)

    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "permission_denied"
    assert Invoice.objects.filter(id=invoice.id).values().get() == before
    assert not CreditNote.objects.filter(invoice=invoice).exists()


@pytest.mark.parametrize("start", ["0001-01-01T00:00:00%2B14:00", "9999-12-31T23:00:00-14:00"])
def test_a_period_start_past_the_representable_range_in_utc_is_a_400(make_key, api, start):
    response = api(make_key()).get(f"/api/v1/invoices?period_start={start}")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "period_start"
    assert "out of range in UTC" in response.json()["error"]["message"]
