"""The portal in a real Chromium: sign in and see the usage chart drawn, open an invoice and
download its PDF, buy a credit pack and create and revoke a key, the home page at phone
width."""

import pytest

from apps.billing.models import Invoice
from apps.tenants.models import ApiKey
from tests.conftest import PHONE
from tests.portal.conftest import NOW, PASSWORD

__all__ = ["NOW"]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _sign_in(page, username: str) -> None:
    page.goto("/portal/")
    assert page.title() == "Sign in · Percall"
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/portal/")


def test_sign_in_and_see_the_usage_chart_drawn(world, page):
    _sign_in(page, "olga")
    assert page.title() == "Home · Alpha Labs · Percall"
    assert page.locator('[data-figure="calls"]').inner_text() == "7"
    canvas = page.locator("canvas[data-chart]").first
    canvas.wait_for()
    # Chart.js took the canvas and drew both features' bars
    drawn = page.evaluate(
        "() => { const c = Chart.getChart(document.querySelector('canvas[data-chart]'));"
        " return c ? c.data.datasets.map(d => [d.label, d.data]) : null; }"
    )
    assert drawn == [["search", [4, 0]], ["chat", [0, 3]]]
    # and the meters' chart beside it: calls 4 + 2, tokens 1,000,000 on the 19th
    meters = page.evaluate(
        "() => { const c = Chart.getChart(document.querySelector('canvas[data-meter-chart]'));"
        " return c ? c.data.datasets.map(d => [d.label, d.data]) : null; }"
    )
    assert meters == [["tokens", [0, 1000000]], ["calls", [4, 2]]]


def test_open_an_invoice_and_download_its_pdf(world, page):
    _sign_in(page, "vera")
    page.get_by_role("link", name="Invoices").click()
    page.get_by_role("link", name=world.alpha_invoice.number, exact=True).click()
    assert page.title().startswith(f"Invoice {world.alpha_invoice.number}")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download PDF").click()
    assert download.value.suggested_filename == f"{world.alpha_invoice.number}.pdf"
    with open(download.value.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"


def test_buy_a_pack_then_create_and_revoke_a_key(world, page):
    _sign_in(page, "bill")
    page.get_by_role("link", name="Credits").click()
    page.get_by_role("button", name="Buy $100 of credits").click()
    page.wait_for_url("**/portal/invoices/*/")
    assert "Pack bought" in page.locator(".messages").inner_text()
    assert Invoice.objects.filter(tenant=world.alpha, kind="credit_purchase").count() == 1

    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("browser key")
    page.get_by_label("read: usage, invoices, credits").check()
    page.get_by_role("button", name="Create key").click()
    plaintext = page.get_by_label("Your new key").input_value()
    assert plaintext.startswith("pc_")
    page.get_by_role("button", name="Revoke browser key").click()
    page.wait_for_url("**/portal/keys/")
    assert ApiKey.objects.get(name="browser key").revoked_at is not None


@pytest.mark.parametrize("page", [PHONE], indirect=True)
def test_home_fits_a_phone(world, page):
    _sign_in(page, "olga")
    page.locator("canvas[data-chart]").first.wait_for()
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
