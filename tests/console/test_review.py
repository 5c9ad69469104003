"""The quarterly API program review, as a page and as a one-page PDF."""

import io
import re

import pytest
from pypdf import PdfReader

from tests.console.program_setup import NOW

__all__ = ["NOW"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


def test_the_review_sums_the_quarter(finance, program):
    body = finance.get("/console/review/?quarter=2026-Q4").content.decode()

    assert "<title>Quarterly review 2026 Q4 · Percall</title>" in body
    # 1 partner at the end of September (acme), 4 at the end of December: (4 - 1) / 1 = +300 %
    assert "Registered partners went from 1 to" in body and "(+300.0 %)" in body
    # October alone billed: 54.00 + 5.00; cost 0.44; margin 58.56 = 99.3 % of 59.00
    assert 'data-figure="revenue">59.00 USD<' in body
    assert 'data-figure="margin">58.56 USD<' in body and "(99.3 %)" in body
    # initech and later never called
    assert "Activate the 2 registered partner(s) who never made a call." in body


def test_the_next_steps_name_the_open_findings(finance, program):
    body = finance.get("/console/review/?quarter=2026-Q3").content.decode()

    # acme's September no_subscription finding
    assert "Work the 1 unresolved revenue-assurance finding(s)." in body


def test_the_default_is_the_last_closed_quarter(finance, db):
    body = finance.get("/console/review/").content.decode()

    assert "2026 Q3" in body  # 3 November 2026: Q3 is the last closed quarter


def test_a_bad_quarter_is_a_400_naming_the_field(finance, db):
    response = finance.get("/console/review/?quarter=2026-Q5")

    assert response.status_code == 400
    assert "Quarter: &#x27;2026-Q5&#x27; is not a quarter as YYYY-Qn" in response.content.decode()
    assert finance.get("/console/review.pdf?quarter=26Q1").status_code == 400


def test_the_pdf_is_one_page_with_the_figures(finance, program):
    response = finance.get("/console/review.pdf?quarter=2026-Q4")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == (
        'attachment; filename="api-program-review-2026-Q4.pdf"'
    )
    pdf = PdfReader(io.BytesIO(response.content))
    assert len(pdf.pages) == 1
    text = re.sub(r"\s+", " ", pdf.pages[0].extract_text())
    assert "API program review · 2026 Q4" in text
    assert "59.00 USD" in text and "58.56 USD" in text
    assert "Next steps" in text
