"""Invoices to review: a draft of October seen 40 minutes after the month ended (inside the
one-hour grace), what changed since its last refresh, and finalize / void and reissue /
credit notes through billing's services, each confirmed.

acme is on Standard (50.00 a month, 0.10 a call after 10 free, 0.001 a token) from
1 October; 30 calls on 5 October are drafted at 00:30 on 1 November: 50.00 + (30 - 10) x
0.10 = 52.00. Five more October calls arrive at 00:35, after that refresh."""

import io
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest
from django.test import Client
from pypdf import PdfReader

from apps.billing.models import CreditNote, Invoice
from apps.billing.services.runs import billing_run
from tests.assurance.leakage_setup import calls, catalog_load, send, subscribe

NOW = datetime(2026, 11, 1, 0, 40, tzinfo=UTC)
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture
def draft(make_tenant) -> Invoice:
    catalog_load()
    acme = make_tenant("acme", registered_at=datetime(2026, 9, 1, tzinfo=UTC))
    subscribe(acme, "std")
    send(calls(30), at=datetime(2026, 10, 31, 12, tzinfo=UTC))
    billing_run(as_of=datetime(2026, 11, 1, 0, 30, tzinfo=UTC))
    send(calls(5, day=31), at=datetime(2026, 11, 1, 0, 35, tzinfo=UTC))
    return Invoice.objects.get(tenant=acme, status="draft")


@pytest.fixture
def finalized(draft) -> Invoice:
    billing_run(as_of=datetime(2026, 11, 1, 2, tzinfo=UTC))  # past the grace: finalized
    draft.refresh_from_db()
    assert draft.status == "finalized"
    return draft


def test_the_queue_lists_drafts_with_when_they_were_priced(finance, draft):
    body = finance.get("/console/invoices/").content.decode()

    assert f'href="/console/invoices/{draft.id}/"' in body
    assert "52.00 USD" in body  # the subtotal as last priced
    assert "2026-11-01 00:30" in body
    assert (
        f"/console/invoices/{draft.id}/"
        not in finance.get("/console/invoices/?status=finalized").content.decode()
    )


def test_a_draft_shows_what_changed_since_its_last_refresh(finance, draft):
    body = finance.get(f"/console/invoices/{draft.id}/").content.decode()

    # calls: (35 - 10) x 0.10 = 2.50 now against 2.00 then: +0.50; subtotal 52.00 -> 52.50
    assert 'data-figure="line-change">0.50 USD<' in body
    assert 'data-figure="subtotal-change">0.50 USD<' in body
    assert "52.50 USD" in body


def test_finalizing_needs_the_confirmation(finance, draft):
    response = finance.post(f"/console/invoices/{draft.id}/finalize/")

    assert response.status_code == 400
    assert "I confirm: This field is required." in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == "draft" and draft.number is None


def test_finalizing_numbers_the_invoice(finance, draft):
    response = finance.post(f"/console/invoices/{draft.id}/finalize/", {"finalize-confirm": "on"})

    assert response["Location"] == f"/console/invoices/{draft.id}/"
    draft.refresh_from_db()
    assert (draft.status, draft.number) == ("finalized", "PC-2026-000001")
    assert "Invoice PC-2026-000001 finalized." in finance.get(response["Location"]).content.decode()


def test_voiding_with_a_reissue_opens_a_new_draft(finance, finalized):
    response = finance.post(
        f"/console/invoices/{finalized.id}/void/",
        {"void-reason": "Wrong plan", "void-reissue": "on", "void-confirm": "on"},
    )

    finalized.refresh_from_db()
    assert (finalized.status, finalized.void_reason) == ("void", "Wrong plan")
    reissue = Invoice.objects.get(reissue_of=finalized)
    assert reissue.status == "draft"
    assert response["Location"] == f"/console/invoices/{reissue.id}/"


def test_voiding_without_a_reason_changes_nothing(finance, finalized):
    response = finance.post(f"/console/invoices/{finalized.id}/void/", {"void-confirm": "on"})

    assert response.status_code == 400
    assert "Reason to void: This field is required." in response.content.decode()
    finalized.refresh_from_db()
    assert finalized.status == "finalized"


def test_a_credit_note_is_issued_against_a_finalized_invoice(finance, finalized):
    # finalized with all 35 calls: 50.00 + 2.50 = 52.50, no credits, no tax
    assert finalized.total_amount == Decimal("52.50")
    too_much = finance.post(
        f"/console/invoices/{finalized.id}/credit-note/",
        {"note-amount": "52.51", "note-reason": "goodwill", "note-confirm": "on"},
    )
    assert too_much.status_code == 400
    assert "amount: 52.51 is more than the 52.5000 USD left" in too_much.content.decode()
    assert not CreditNote.objects.exists()

    finance.post(
        f"/console/invoices/{finalized.id}/credit-note/",
        {"note-amount": "10.00", "note-reason": "goodwill", "note-confirm": "on"},
    )

    note = CreditNote.objects.get(invoice=finalized)
    assert (str(note.amount), note.reason) == ("10.0000", "goodwill")


def test_a_draft_pdf_downloads(finance, draft):
    response = finance.get(f"/console/invoices/{draft.id}/pdf/")

    assert response["Content-Type"] == "application/pdf"
    assert len(PdfReader(io.BytesIO(response.content)).pages) >= 1


def test_an_unknown_invoice_or_action_is_a_404(finance, draft):
    unknown = uuid4()
    assert finance.get(f"/console/invoices/{unknown}/").status_code == 404
    assert finance.get(f"/console/invoices/{unknown}/pdf/").status_code == 404
    confirm = {"finalize-confirm": "on"}
    assert finance.post(f"/console/invoices/{unknown}/finalize/", confirm).status_code == 404
    assert finance.post(f"/console/invoices/{draft.id}/delete/", confirm).status_code == 404


def test_writes_need_post_and_a_csrf_token(make_user, draft):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("fiona"))
    path = f"/console/invoices/{draft.id}/finalize/"

    assert client.get(path).status_code == 405
    assert client.post(path, {"finalize-confirm": "on"}).status_code == 403
    draft.refresh_from_db()
    assert draft.status == "draft"


def test_non_finance_users_cannot_see_or_change_invoices(make_user, draft):
    client = Client()
    client.force_login(make_user("sam", finance=False))

    assert client.get(f"/console/invoices/{draft.id}/").status_code == 403
    finalize = client.post(f"/console/invoices/{draft.id}/finalize/", {"finalize-confirm": "on"})
    assert finalize.status_code == 403
    draft.refresh_from_db()
    assert draft.status == "draft"


def test_the_queue_query_count_is_bounded(finance, draft, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        finance.get("/console/invoices/")
