"""The billing admin shows everything and changes nothing: invoices, ledgers, numbers and
idempotency records move only through the services. Staff can download an invoice's PDF."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.billing.models import (
    CreditDebit,
    CreditGrant,
    CreditNote,
    IdempotentRequest,
    Invoice,
    NumberCounter,
    Subscription,
)
from apps.billing.services.credits import credit_grant_issue
from apps.billing.services.operations import credit_note_issue
from apps.billing.services.purchases import idempotent
from apps.billing.services.runs import billing_run
from apps.billing.services.subscriptions import subscription_plan_change
from apps.catalog.selectors import plan_get
from tests.billing.billing_setup import catalog_load, subscribe

NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)
OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@percall.test", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def billed(make_tenant) -> Invoice:
    """Growth (99.00) for October, finalized with 40.00 of credits, a 10.00 credit note, a plan
    change for December, and an answered idempotent request."""
    catalog_load()
    acme = make_tenant("acme")
    subscription = subscribe(acme, "growth", OCT)
    credit_grant_issue(
        tenant_id=acme.id,
        currency="USD",
        amount=Decimal("40.00"),
        effective_at=OCT,
        expires_at=None,
        reason="welcome",
    )
    billing_run(as_of=NOV + timedelta(hours=2))
    invoice = Invoice.objects.get(tenant=acme, period_start=OCT)
    assert (invoice.status, invoice.total_amount) == ("finalized", Decimal("59.00"))
    credit_note_issue(invoice_id=invoice.id, amount=Decimal("10.00"), reason="goodwill")
    subscription_plan_change(subscription_id=subscription.id, plan=plan_get(code="pro"))
    idempotent(
        scope="acme:credit-purchase", key="k1", request={"pack": "x"}, work=lambda: (201, {})
    )
    return invoice


def url(obj, view: str = "change") -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_{view}", args=[obj.pk])


def every_row(invoice: Invoice) -> list:
    return [
        Subscription.objects.get(),
        invoice,
        CreditGrant.objects.get(),
        CreditNote.objects.get(),
        NumberCounter.objects.order_by("series").first(),
        IdempotentRequest.objects.get(),
    ]


def test_every_billing_page_loads_and_nothing_can_be_added(staff, billed):
    for row in every_row(billed):
        name = row._meta.model_name
        changelist = reverse(f"admin:billing_{name}_changelist")
        assert staff.get(changelist).status_code == 200, name
        assert staff.get(changelist, {"q": "acme"}).status_code == 200, name
        assert staff.get(url(row)).status_code == 200, name
        assert staff.get(reverse(f"admin:billing_{name}_add")).status_code == 403, name


def test_the_lists_show_numbers_status_and_money_with_currency(staff, billed):
    invoices = staff.get(reverse("admin:billing_invoice_changelist")).content.decode()
    assert "PC-2026-000001" in invoices
    assert "59.00 USD" in invoices
    grants = staff.get(reverse("admin:billing_creditgrant_changelist")).content.decode()
    assert "0.00 USD" in grants  # remaining
    assert "40.00 USD" in grants  # amount


def test_an_invoice_cannot_be_changed_or_deleted(staff, billed):
    # given the finalized invoice's page: no inputs, no delete link
    lines = list(billed.lines.values_list("id", "amount"))
    page = staff.get(url(billed)).content.decode()
    assert 'name="status"' not in page
    assert 'name="lines-0-amount"' not in page
    assert url(billed, "delete") not in page

    # when someone posts a change, a delete, or a bulk delete
    changed = staff.post(url(billed), {"status": "void", "total_amount": "0", "_save": "Save"})
    deleted = staff.post(url(billed, "delete"), {"post": "yes"})
    staff.post(
        reverse("admin:billing_invoice_changelist"),
        {"action": "delete_selected", "_selected_action": [str(billed.id)], "post": "yes"},
    )

    # then they are refused and the invoice, its lines and its debits are as they were
    assert (changed.status_code, deleted.status_code) == (403, 403)
    invoice = Invoice.objects.get(id=billed.id)
    assert (invoice.status, invoice.number, invoice.total_amount) == (
        "finalized",
        "PC-2026-000001",
        Decimal("59.00"),
    )
    assert list(invoice.lines.values_list("id", "amount")) == lines
    assert CreditDebit.objects.filter(invoice=invoice).count() == 1


def test_no_billing_row_can_be_changed_or_deleted(staff, billed):
    for row in every_row(billed):
        assert staff.post(url(row), {"_save": "Save"}).status_code == 403, row._meta.model_name
        assert staff.post(url(row, "delete"), {"post": "yes"}).status_code == 403
        assert type(row).objects.filter(pk=row.pk).exists()


def test_staff_download_an_invoice_pdf_from_its_page(staff, billed, settings, tmp_path, client):
    settings.MEDIA_ROOT = tmp_path
    pdf_url = reverse("admin:billing_invoice_pdf", args=[billed.pk])
    assert pdf_url in staff.get(url(billed)).content.decode()

    response = staff.get(pdf_url)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'inline; filename="PC-2026-000001.pdf"'
    assert response.content.startswith(b"%PDF")


def test_the_pdf_view_is_for_staff_only(billed, client, django_user_model):
    pdf_url = reverse("admin:billing_invoice_pdf", args=[billed.pk])

    assert client.get(pdf_url).status_code == 302  # to the admin login
    client.force_login(django_user_model.objects.create_user("someone", password="pw"))
    assert client.get(pdf_url).status_code == 302


def test_the_pdf_of_an_unknown_invoice_is_not_found(staff, billed):
    unknown = "00000000-0000-0000-0000-000000000000"
    assert staff.get(reverse("admin:billing_invoice_pdf", args=[unknown])).status_code == 404
