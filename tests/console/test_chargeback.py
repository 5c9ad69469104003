"""Chargeback in the console for October 2026: draft the statements, preview the shared-cost
allocation, issue a statement as the signed-in user, and download PDF, GL CSV and FOCUS.

Cost centers search (budget 10.00) and chat, mapped by feature; three search calls of 1.00
and one chat call of 2.00; a 10.00 "platform" pool shared by requests (3 : 1)."""

import csv
import io
from uuid import uuid4

import pytest
from django.test import Client

from apps.chargeback.models import Statement
from tests.chargeback.chargeback_setup import NOW, call, center, pool, record, rule

__all__ = ["NOW"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
PAGE = "/console/chargeback/?period=2026-10"


@pytest.fixture
def month(make_tenant):
    make_tenant("acme")
    search, chat = center("search", budget="10.00"), center("chat")
    rule("feature", "search", search)
    rule("feature", "chat", chat)
    pool("platform", "10.00", "requests")
    record(*(call("1.00", feature="search") for _ in range(3)), call("2.00", feature="chat"))
    return {"search": search, "chat": chat}


def statement_of(code: str) -> Statement:
    return Statement.objects.get(cost_center__code=code)


def test_the_allocation_is_previewed_before_any_statement(finance, month):
    body = finance.get(PAGE).content.decode()

    assert "No statements for this month yet" in body
    # 10.00 by requests 3 : 1: search 7.50, chat 2.50
    assert 'data-figure="part">2.50 USD<' in body
    assert 'data-figure="part">7.50 USD<' in body


def test_drafting_shows_the_statements_with_their_totals(finance, month):
    response = finance.post("/console/chargeback/draft/", {"period": "2026-10"})

    assert response["Location"] == PAGE
    body = finance.get(PAGE).content.decode()
    # search: 3 x 1.00 + 7.50 = 10.50, 0.50 over its 10.00 budget; chat: 2.00 + 2.50 = 4.50
    assert 'data-figure="total">10.50 USD<' in body
    assert 'data-figure="total">4.50 USD<' in body
    assert '<td class="num up">-0.50 USD</td>' in body


def test_issuing_numbers_the_statement_and_records_who(finance, month):
    finance.post("/console/chargeback/draft/", {"period": "2026-10"})
    draft = statement_of("search")

    unconfirmed = finance.post(f"/console/chargeback/statements/{draft.id}/issue/")
    assert statement_of("search").status == "draft"
    assert unconfirmed["Location"] == PAGE

    finance.post(f"/console/chargeback/statements/{draft.id}/issue/", {"confirm": "on"})

    issued = statement_of("search")
    assert issued.status == "issued" and issued.number
    assert issued.issued_by.username == "fiona"
    assert f"Statement {issued.number} issued by fiona." in finance.get(PAGE).content.decode()


def test_a_statement_pdf_and_the_csv_exports_download(finance, month):
    finance.post("/console/chargeback/draft/", {"period": "2026-10"})
    draft = statement_of("chat")

    pdf = finance.get(f"/console/chargeback/statements/{draft.id}/pdf/")
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    gl = finance.get("/console/chargeback/gl.csv?period=2026-10")
    assert gl["Content-Disposition"] == 'attachment; filename="chargeback-gl-2026-10.csv"'
    rows = list(csv.reader(io.StringIO(gl.content.decode())))
    # chat's lines: 2.50 allocated + 2.00 direct = its 4.50
    chat = sorted((row[6], row[8]) for row in rows[1:] if row[3] == "chat")
    assert chat == [("allocated", "2.50"), ("direct", "2.00")]
    focus = finance.get("/console/chargeback/focus.csv?period=2026-10").content.decode()
    assert focus.splitlines()[0].startswith("BilledCost,")


def test_unknown_statements_and_exports_are_404s(finance, month):
    assert finance.get(f"/console/chargeback/statements/{uuid4()}/pdf/").status_code == 404
    unknown = finance.post(f"/console/chargeback/statements/{uuid4()}/issue/", {"confirm": "on"})
    assert unknown.status_code == 404
    assert finance.get("/console/chargeback/ledger.csv?period=2026-10").status_code == 404
    assert finance.get("/console/chargeback/gl.csv?period=2026-1").status_code == 400


def test_non_finance_users_cannot_issue(make_user, finance, month):
    finance.post("/console/chargeback/draft/", {"period": "2026-10"})
    draft = statement_of("search")
    client = Client()
    client.force_login(make_user("sam", finance=False))

    assert (
        client.post(
            f"/console/chargeback/statements/{draft.id}/issue/", {"confirm": "on"}
        ).status_code
        == 403
    )
    assert client.get("/console/chargeback/gl.csv?period=2026-10").status_code == 403
    assert statement_of("search").status == "draft"


def test_the_page_query_count_is_bounded(finance, month, django_assert_max_num_queries):
    finance.post("/console/chargeback/draft/", {"period": "2026-10"})

    with django_assert_max_num_queries(14):
        finance.get(PAGE)
