"""Credits: grants, consumption per invoice, buying a pack once per form."""

from decimal import Decimal
from uuid import uuid4

from apps.billing.models import CreditGrant, Invoice
from tests.portal.conftest import NOW, assert_no_beta

__all__ = ["NOW"]


def test_grants_and_consumption_per_invoice(world, as_user):
    response = as_user(world.viewer).get("/portal/credits/")
    text = response.content.decode()
    assert response.status_code == 200
    # 200.00 granted, October's invoice used 109.00 of it: 91.00 left
    assert 'data-figure="balance">91.00 USD<' in text
    assert "200.00 USD" in text and "109.00 USD" in text
    assert world.alpha_invoice.number in text
    # $100 of credits for 90.00; a viewer may not buy
    assert "$100 of credits" in text and "Ask a billing member" in text
    assert 'name="token"' not in text
    assert_no_beta(response, world)


def test_buying_a_pack_twice_from_one_form_buys_once(world, as_user):
    client = as_user(world.billing)
    page = client.get("/portal/credits/").content.decode()
    token = page.split('name="token" value="')[1].split('"')[0]
    form = {"pack": "pack-100", "token": token}

    first = client.post("/portal/credits/buy/", form)
    again = client.post("/portal/credits/buy/", form)

    purchases = Invoice.objects.filter(tenant=world.alpha, kind="credit_purchase")
    (invoice,) = purchases
    assert first["Location"] == again["Location"] == f"/portal/invoices/{invoice.id}/"
    # 90.00 for the pack, no tax; its grant holds 100.00 of credits
    assert invoice.total_amount == Decimal("90.00")
    grant = CreditGrant.objects.get(purchase_invoice=invoice)
    assert (grant.tenant_id, grant.amount) == (world.alpha.id, Decimal("100.00"))
    balance = client.get("/portal/credits/").content.decode()
    assert 'data-figure="balance">191.00 USD<' in balance  # 91.00 + 100.00


def test_a_viewer_may_not_buy(world, as_user):
    response = as_user(world.viewer).post(
        "/portal/credits/buy/", {"pack": "pack-100", "token": str(uuid4())}
    )
    assert response.status_code == 403
    assert not Invoice.objects.filter(kind="credit_purchase").exists()


def test_an_unknown_pack_is_refused_and_nothing_is_stored(world, as_user):
    client = as_user(world.owner)
    response = client.post("/portal/credits/buy/", {"pack": "nope", "token": str(uuid4())})
    assert response["Location"] == "/portal/credits/"
    assert (
        "pack: &#x27;nope&#x27; is not a credit pack"
        in client.get("/portal/credits/").content.decode()
    )
    assert not Invoice.objects.filter(kind="credit_purchase").exists()


def test_buying_needs_the_csrf_token(world):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(world.owner)
    response = client.post("/portal/credits/buy/", {"pack": "pack-100", "token": str(uuid4())})
    assert response.status_code == 403
    assert not Invoice.objects.filter(kind="credit_purchase").exists()


def test_queries_are_bounded(world, as_user, django_assert_max_num_queries):
    client = as_user(world.viewer)
    with django_assert_max_num_queries(10):
        client.get("/portal/credits/")
