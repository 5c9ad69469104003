"""Invoices: the list, one invoice with its lines and tiers, its PDF."""

from io import BytesIO

from pypdf import PdfReader

from apps.billing.models import Invoice
from tests.portal.conftest import NOW, assert_no_beta

__all__ = ["NOW"]


def test_the_list_shows_the_tenants_issued_invoices(world, as_user):
    response = as_user(world.viewer).get("/portal/invoices/")
    text = response.content.decode()
    assert response.status_code == 200
    assert world.alpha_invoice.number in text
    assert f"/portal/invoices/{world.alpha_invoice.id}/pdf/" in text
    assert_no_beta(response, world)


def test_drafts_are_not_shown(world, as_user):
    Invoice.objects.filter(id=world.alpha_invoice.id).update(status="draft", number=None)
    client = as_user(world.viewer)
    assert str(world.alpha_invoice.id) not in client.get("/portal/invoices/").content.decode()
    assert client.get(f"/portal/invoices/{world.alpha_invoice.id}/").status_code == 404


def test_an_invoice_shows_its_lines_and_tiers(world, as_user):
    response = as_user(world.viewer).get(f"/portal/invoices/{world.alpha_invoice.id}/")
    text = response.content.decode()
    assert response.status_code == 200
    assert f"<title>Invoice {world.alpha_invoice.number} · Alpha Labs · Percall</title>" in text
    # 150,000 units: tier 1 up to 100,000 at 0, tier 2 the next 50,000 at 0.0002 = 10.00
    assert "Tier 1: up to 100,000" in text and "Tier 2: above 100,000, up to 1,000,000" in text
    assert '<td class="num">50,000</td><td class="num">0.0002</td>' in text
    assert "10.00 USD" in text
    # 99.00 base fee + 10.00 = 109.00, all paid by credits: 0.00 due
    assert "109.00 USD" in text and "\u2212109.00 USD" in text
    assert 'data-figure="total">0.00 USD<' in text
    assert "Tax at 0 %" in text
    assert_no_beta(response, world)


def test_the_pdf_downloads(world, as_user):
    response = as_user(world.viewer).get(f"/portal/invoices/{world.alpha_invoice.id}/pdf/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert f'filename="{world.alpha_invoice.number}.pdf"' in response["Content-Disposition"]
    text = "".join(p.extract_text() for p in PdfReader(BytesIO(response.content)).pages)
    assert world.alpha_invoice.number in text and "Alpha Labs" in text


def test_list_queries_do_not_grow_with_invoices(world, as_user, django_assert_max_num_queries):
    client = as_user(world.viewer)
    with django_assert_max_num_queries(8):
        client.get("/portal/invoices/")
    for n in range(5):
        Invoice.objects.create(
            tenant=world.alpha,
            kind="credit_purchase",
            status="finalized",
            number=f"TEST-{n}",
            currency="USD",
            period_start=NOW,
            period_end=NOW,
        )
    with django_assert_max_num_queries(8):
        assert "TEST-4" in client.get("/portal/invoices/").content.decode()


def test_detail_queries_are_bounded(world, as_user, django_assert_max_num_queries):
    client = as_user(world.viewer)
    with django_assert_max_num_queries(9):
        client.get(f"/portal/invoices/{world.alpha_invoice.id}/")
