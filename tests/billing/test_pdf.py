"""Invoice PDFs: what the HTML shows, the PDF's pages and text, the stored file, the fetcher."""

import os
from datetime import UTC, datetime
from decimal import Decimal
from io import BytesIO

import pytest
from pypdf import PdfReader

from apps.billing.models import CreditNote, Invoice, InvoiceLine
from apps.billing.services import pdf
from apps.billing.services.pdf import (
    PdfUrlRefused,
    StaticOnlyUrlFetcher,
    invoice_html,
    invoice_pdf_bytes,
    invoice_pdf_for_download,
    invoice_pdf_render,
)
from apps.tenants.services.tenants import tenant_create

# November 2026 in Europe/Paris (UTC+1 after 25 Oct): midnight local is 23:00 UTC the day before.
NOV_START = datetime(2026, 10, 31, 23, tzinfo=UTC)
NOV_END = datetime(2026, 11, 30, 23, tzinfo=UTC)
ISSUED = datetime(2026, 12, 1, 2, tzinfo=UTC)  # 1 Dec 03:00 in Paris
DUE = datetime(2026, 12, 31, 2, tzinfo=UTC)
NUMBER = "PC-2026-000042"

# Graduated tokens: 1,000,000 at 0.0008 = 800, then 469,000 at 0.0005 = 234.50.
TOKEN_TIERS = [
    {
        "tier": 1,
        "after": "0",
        "up_to": "1000000",
        "quantity": "1000000",
        "unit_price": "0.0008",
        "flat_fee": "0",
        "amount": "800",
    },
    {
        "tier": 2,
        "after": "1000000",
        "up_to": None,
        "quantity": "469000",
        "unit_price": "0.0005",
        "flat_fee": "0",
        "amount": "234.5",
    },
]


def a_tenant(external_id="acme", currency="USD", **kwargs):
    kwargs.setdefault("name", "Acme Robotics")
    kwargs.setdefault("timezone_name", "Europe/Paris")
    kwargs.setdefault("billing_email", "ap@acme.test")
    return tenant_create(external_id=external_id, currency=currency, **kwargs)


def an_invoice(tenant, lines, *, status=Invoice.Status.FINALIZED, number=NUMBER, **fields):
    """An invoice with ``lines`` as (description, quantity, unit_price, amount, tiers)."""
    issued = status != Invoice.Status.DRAFT
    fields.setdefault("content_hash", "a" * 64)
    invoice = Invoice.objects.create(
        tenant=tenant,
        status=status,
        number=number if issued else None,
        currency=tenant.currency,
        period_start=fields.pop("period_start", NOV_START),
        period_end=fields.pop("period_end", NOV_END),
        issued_at=ISSUED if issued else None,
        due_at=DUE if issued else None,
        **fields,
    )
    for position, (description, quantity, unit_price, amount, tiers) in enumerate(lines):
        InvoiceLine.objects.create(
            invoice=invoice,
            position=position,
            kind=InvoiceLine.Kind.USAGE,
            key=f"line:{position}",
            description=description,
            quantity=quantity,
            unit_price=unit_price,
            amount=amount,
            tiers=tiers,
        )
    return Invoice.objects.get(id=invoice.id)  # as the database returns it: 4-place amounts


def a_usd_invoice(**fields):
    """Base fee 200.00 + tokens 1,034.50 = 1,234.50; less 34.50 credits; 20 % tax on 1,200.00
    is 240.00; total 1,440.00."""
    fields.setdefault("status", Invoice.Status.FINALIZED)
    return an_invoice(
        a_tenant(tax_rate="0.2"),
        [
            ("Pro plan base fee", Decimal(1), Decimal(200), Decimal("200.00"), []),
            ("GPT tokens", Decimal(1469000), None, Decimal("1034.50"), TOKEN_TIERS),
        ],
        subtotal_amount=Decimal("1234.50"),
        credits_applied_amount=Decimal("34.50"),
        tax_rate=Decimal("0.2"),
        tax_amount=Decimal("240.00"),
        total_amount=Decimal("1440.00"),
        **fields,
    )


def pdf_pages(content: bytes) -> list[str]:
    assert content.startswith(b"%PDF-")
    return [page.extract_text() for page in PdfReader(BytesIO(content)).pages]


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


# --- HTML -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_html_shows_usd_invoice_with_two_decimals_tiers_tax_and_total():
    html = invoice_html(a_usd_invoice())

    assert NUMBER in html
    assert "Acme Robotics" in html
    assert "Account acme" in html
    assert "ap@acme.test" in html
    assert "Percall demo operator" in html
    assert "Pro plan base fee" in html
    assert "GPT tokens" in html
    # The period in the tenant's timezone, the exclusive end shown as its last day.
    assert "1 Nov 2026 \u2013 30 Nov 2026" in html
    assert ">1 Dec 2026<" in html
    assert ">31 Dec 2026<" in html
    # Lines: quantity and price at full precision, amounts with exactly 2 decimals.
    assert '<td class="num">1,469,000</td>' in html
    assert '<td class="num">1,034.50</td>' in html
    assert '<td class="num">200</td>' in html  # the base fee's unit price, no trailing zeros
    assert '<td class="num">200.00</td>' in html
    # Tier breakdown under the tokens line.
    assert "Tier 1: up to 1,000,000" in html
    assert "Tier 2: above 1,000,000" in html
    assert '<td class="num">1,000,000</td>' in html
    assert '<td class="num">469,000</td>' in html
    assert '<td class="num">0.0008</td>' in html
    assert '<td class="num">0.0005</td>' in html
    assert '<td class="num">800.00</td>' in html
    assert '<td class="num">234.50</td>' in html
    # Totals.
    assert "<th>Subtotal</th><td>1,234.50</td>" in html
    assert "<th>Credits applied</th><td>-34.50</td>" in html
    assert "<th>Tax (20 %)</th><td>240.00</td>" in html
    assert "<th>Total USD</th><td>1,440.00</td>" in html
    assert "1,234.5000" not in html
    assert 'class="watermark"' not in html


@pytest.mark.django_db
def test_html_shows_jpy_amounts_without_decimals_or_symbol():
    # 2,470 calls at 0.5 = 1,235; 10 % tax of 1,235 = 123.5, rounded half up to 124.
    invoice = an_invoice(
        a_tenant("sakura", "JPY", name="Sakura KK", timezone_name="Asia/Tokyo"),
        [("API calls", Decimal(2470), Decimal("0.5"), Decimal(1235), [])],
        subtotal_amount=Decimal(1235),
        tax_rate=Decimal("0.1"),
        tax_amount=Decimal(124),
        total_amount=Decimal(1359),
    )

    html = invoice_html(invoice)

    assert '<td class="num">2,470</td>' in html
    assert '<td class="num">0.5</td>' in html
    assert '<td class="num">1,235</td>' in html
    assert "<th>Tax (10 %)</th><td>124</td>" in html
    assert "<th>Total JPY</th><td>1,359</td>" in html
    assert "<th>Credits applied</th><td>0</td>" in html
    assert "1,235.0" not in html
    assert "\u00a5" not in html  # no yen sign: the currency code says it


@pytest.mark.django_db
def test_html_shows_kwd_amounts_with_three_decimals():
    # 1,234.5 GB-months at 0.81 = 999.945; plus 12.400 base: 1,012.345, no tax.
    invoice = an_invoice(
        a_tenant("gulf", "KWD", name="Gulf Data", timezone_name="Asia/Kuwait"),
        [
            ("Base fee", Decimal(1), Decimal("12.4"), Decimal("12.400"), []),
            ("Storage GB-months", Decimal("1234.5"), Decimal("0.81"), Decimal("999.945"), []),
        ],
        subtotal_amount=Decimal("1012.345"),
        total_amount=Decimal("1012.345"),
    )

    html = invoice_html(invoice)

    assert '<td class="num">1,234.5</td>' in html
    assert '<td class="num">0.81</td>' in html
    assert '<td class="num">999.945</td>' in html
    assert '<td class="num">12.400</td>' in html
    assert "<th>Tax (0 %)</th><td>0.000</td>" in html
    assert "<th>Total KWD</th><td>1,012.345</td>" in html
    assert "1,012.3450" not in html


@pytest.mark.django_db
def test_html_of_a_draft_has_the_draft_watermark_and_no_number_or_dates():
    html = invoice_html(a_usd_invoice(status=Invoice.Status.DRAFT))

    assert '<div class="watermark">DRAFT</div>' in html
    assert '<p class="doc-number">DRAFT</p>' in html
    assert "<tr><th>Issued</th><td>\u2014</td></tr>" in html
    assert NUMBER not in html


@pytest.mark.django_db
def test_html_of_a_void_invoice_has_the_void_watermark_and_reason():
    invoice = a_usd_invoice(
        status=Invoice.Status.VOID,
        voided_at=datetime(2026, 12, 3, 9, tzinfo=UTC),
        void_reason="Billed on the wrong plan",
    )

    html = invoice_html(invoice)

    assert '<div class="watermark">VOID</div>' in html
    assert NUMBER in html
    assert "<tr><th>Voided</th><td>3 Dec 2026</td></tr>" in html
    assert "Billed on the wrong plan" in html


@pytest.mark.django_db
def test_html_of_a_credit_purchase_shows_its_purchase_date():
    bought = datetime(2026, 11, 12, 23, 30, tzinfo=UTC)  # 13 Nov 00:30 in Paris
    invoice = an_invoice(
        a_tenant(),
        [("Starter pack: 100 USD of credits", Decimal(1), Decimal(90), Decimal("90.00"), [])],
        kind=Invoice.Kind.CREDIT_PURCHASE,
        period_start=bought,
        period_end=bought,
        subtotal_amount=Decimal("90.00"),
        total_amount=Decimal("90.00"),
    )

    html = invoice_html(invoice)

    assert "<tr><th>Type</th><td>Credit purchase</td></tr>" in html
    assert "<tr><th>Purchased</th><td>13 Nov 2026</td></tr>" in html


@pytest.mark.django_db
def test_html_lists_credit_notes_and_the_balance_after_them():
    invoice = a_usd_invoice()
    CreditNote.objects.create(
        invoice=invoice,
        number="CN-2026-000003",
        currency="USD",
        amount=Decimal("440.00"),
        reason="Outage on 12 Nov",
        issued_at=datetime(2026, 12, 5, 12, tzinfo=UTC),
    )

    html = invoice_html(Invoice.objects.get(id=invoice.id))

    assert "Credit notes" in html
    assert "<td>CN-2026-000003</td><td>5 Dec 2026</td><td>Outage on 12 Nov</td>" in html
    assert '<td class="num">-440.00</td>' in html
    # 1,440.00 - 440.00
    assert 'Total after credit notes</td><td class="num">1,000.00</td>' in html


@pytest.mark.django_db
def test_html_escapes_tenant_text_so_it_cannot_load_anything():
    invoice = an_invoice(
        a_tenant(name='Evil <img src="http://example.com/x.png"> & Co'),
        [("Calls <script>", Decimal(1), Decimal(1), Decimal(1), [])],
    )

    html = invoice_html(invoice)

    assert "<img" not in html
    assert "<script" not in html
    assert "Evil &lt;img src=&quot;http://example.com/x.png&quot;&gt; &amp; Co" in html


# --- PDF --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_short_invoice_pdf_is_one_page_with_number_and_total():
    pages = pdf_pages(invoice_pdf_bytes(a_usd_invoice()))

    assert len(pages) == 1
    assert NUMBER in pages[0]
    assert "Acme Robotics" in pages[0]
    assert "1,440.00" in pages[0]
    assert "Tier 2: above 1,000,000" in pages[0]
    assert "Page 1 of 1" in pages[0]


@pytest.mark.django_db
def test_long_invoice_pdf_paginates_with_the_header_on_every_page():
    # 120 lines of 10.00: subtotal and total 1,200.00.
    lines = [
        (f"Usage line {n:03d}", Decimal(n), Decimal(10) / n, Decimal("10.00"), [])
        for n in range(1, 121)
    ]
    invoice = an_invoice(
        a_tenant(),
        lines,
        subtotal_amount=Decimal("1200.00"),
        total_amount=Decimal("1200.00"),
    )

    pages = pdf_pages(invoice_pdf_bytes(invoice))

    assert len(pages) == 5
    assert "Usage line 001" in pages[0]
    assert "Usage line 120" in pages[-1]
    assert "Usage line 120" not in pages[0]
    assert "1,200.00" in pages[-1]
    for number, text in enumerate(pages, start=1):
        assert "DESCRIPTION" in text.upper()  # the table header, repeated
        assert f"Page {number} of 5" in text


@pytest.mark.django_db
def test_draft_pdf_shows_the_draft_watermark():
    pages = pdf_pages(invoice_pdf_bytes(a_usd_invoice(status=Invoice.Status.DRAFT)))

    assert "DRAFT" in pages[0]
    assert NUMBER not in pages[0]


# --- stored file ------------------------------------------------------------------------


@pytest.mark.django_db
def test_render_stores_the_pdf_once_and_again_only_when_content_changes(media):
    invoice = a_usd_invoice()
    stored = media / "invoices" / "acme" / f"{NUMBER}.pdf"

    assert invoice_pdf_render(invoice_id=str(invoice.id)) == "rendered"

    invoice.refresh_from_db()
    assert invoice.pdf_file == f"invoices/acme/{NUMBER}.pdf"
    assert invoice.pdf_hash == "a" * 64
    assert "1,440.00" in pdf_pages(stored.read_bytes())[0]
    first = stored.stat()

    assert invoice_pdf_render(invoice_id=str(invoice.id)) == "unchanged"
    again = stored.stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)

    Invoice.objects.filter(id=invoice.id).update(content_hash="b" * 64)
    assert invoice_pdf_render(invoice_id=str(invoice.id)) == "rendered"
    invoice.refresh_from_db()
    assert invoice.pdf_hash == "b" * 64
    assert stored.stat().st_ino != first.st_ino  # replaced by a new file, not rewritten
    assert sorted(p.name for p in stored.parent.iterdir()) == [f"{NUMBER}.pdf"]  # no temp left


@pytest.mark.django_db
def test_render_again_when_the_stored_file_is_missing(media):
    invoice = a_usd_invoice()
    invoice_pdf_render(invoice_id=str(invoice.id))
    (media / "invoices" / "acme" / f"{NUMBER}.pdf").unlink()

    assert invoice_pdf_render(invoice_id=str(invoice.id)) == "rendered"
    assert (media / "invoices" / "acme" / f"{NUMBER}.pdf").is_file()


@pytest.mark.django_db
def test_render_skips_drafts(media):
    invoice = a_usd_invoice(status=Invoice.Status.DRAFT)

    assert invoice_pdf_render(invoice_id=str(invoice.id)) == "skipped: draft"

    invoice.refresh_from_db()
    assert (invoice.pdf_file, invoice.pdf_hash) == ("", "")
    assert not media.exists()


@pytest.mark.django_db
def test_render_discards_output_when_the_invoice_changes_meanwhile(media, monkeypatch):
    invoice = a_usd_invoice()

    def render_while_it_changes(rendering):
        Invoice.objects.filter(id=rendering.id).update(content_hash="c" * 64)
        return b"%PDF-stale"

    monkeypatch.setattr(pdf, "invoice_pdf_bytes", render_while_it_changes)

    assert invoice_pdf_render(invoice_id=str(invoice.id)) == "skipped: content changed"

    invoice.refresh_from_db()
    assert (invoice.pdf_file, invoice.pdf_hash) == ("", "")
    assert list((media / "invoices" / "acme").iterdir()) == []


@pytest.mark.django_db
def test_render_keeps_a_path_like_tenant_id_inside_media_root(media):
    invoice = an_invoice(a_tenant("../../etc"), [])

    assert invoice_pdf_render(invoice_id=str(invoice.id)) == "rendered"

    invoice.refresh_from_db()
    assert invoice.pdf_file == f"invoices/______etc/{NUMBER}.pdf"
    assert (media / invoice.pdf_file).is_file()


@pytest.mark.django_db
def test_download_serves_the_current_stored_file(media):
    invoice = a_usd_invoice()
    invoice_pdf_render(invoice_id=str(invoice.id))
    invoice.refresh_from_db()
    (media / invoice.pdf_file).write_bytes(b"%PDF-stored")

    assert invoice_pdf_for_download(invoice) == b"%PDF-stored"


@pytest.mark.django_db
def test_download_renders_when_the_stored_file_is_stale(media):
    invoice = a_usd_invoice()
    invoice_pdf_render(invoice_id=str(invoice.id))
    invoice.refresh_from_db()
    (media / invoice.pdf_file).write_bytes(b"%PDF-stored")
    invoice.content_hash = "d" * 64

    pages = pdf_pages(invoice_pdf_for_download(invoice))

    assert NUMBER in pages[0]


@pytest.mark.django_db
def test_download_of_a_draft_renders_it_with_watermark_and_stores_nothing(media):
    invoice = a_usd_invoice(status=Invoice.Status.DRAFT)

    pages = pdf_pages(invoice_pdf_for_download(invoice))

    assert "DRAFT" in pages[0]
    assert "1,440.00" in pages[0]
    assert not media.exists()
    invoice.refresh_from_db()
    assert invoice.pdf_file == ""


# --- URL fetcher ------------------------------------------------------------------------


@pytest.fixture
def static(settings, tmp_path):
    root = tmp_path / "static"
    root.mkdir()
    (root / "logo.svg").write_bytes(b"<svg/>")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    settings.STATIC_ROOT = str(root)
    settings.STATICFILES_DIRS = []
    return root


def test_fetcher_serves_static_files_and_data_urls(static):
    fetcher = StaticOnlyUrlFetcher()

    assert fetcher((static / "logo.svg").as_uri()).read() == b"<svg/>"
    assert fetcher("data:text/plain,hello").read() == b"hello"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/logo.png",
        "https://example.com/font.woff2",
        "ftp://example.com/x",
        "file:///etc/passwd",
    ],
)
def test_fetcher_refuses_network_and_files_outside_static(static, url):
    with pytest.raises(PdfUrlRefused):
        StaticOnlyUrlFetcher()(url)


def test_fetcher_refuses_a_way_out_of_static(static):
    os.symlink(static.parent / "secret.txt", static / "linked.txt")
    fetcher = StaticOnlyUrlFetcher()

    for url in [
        f"file://{static}/../secret.txt",
        (static / "linked.txt").as_uri(),
        f"file://otherhost{static}/logo.svg",
        static.as_uri(),  # a directory, not a file
    ]:
        with pytest.raises(PdfUrlRefused):
            fetcher(url)
