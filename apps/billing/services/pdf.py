"""Invoice PDFs: the template's context, HTML, PDF bytes, and the stored file.

An issued (finalized, paid, void) invoice's PDF is stored under
``MEDIA_ROOT/invoices/<tenant external id>/<number>.pdf`` and rendered again only when
``content_hash`` (what the PDF shows) changes; ``pdf_hash`` is the ``content_hash`` the stored
file shows. Drafts are rendered on the fly and never stored.

Rendering fetches nothing from the network: the only URLs WeasyPrint may load are ``data:`` URLs
and files under the project's static directories (see :class:`StaticOnlyUrlFetcher`).
"""

import logging
import mimetypes
import os
import re
import tempfile
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname
from uuid import UUID
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch
from django.template.loader import render_to_string
from django.utils import timezone
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from apps.billing.models import Invoice, InvoiceLine
from apps.billing.services.operations import invoices_for_update
from apps.core.money import minor_units, quantize

logger = logging.getLogger(__name__)

TEMPLATE = "billing/invoice.html"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_KINDS = {
    Invoice.Kind.SUBSCRIPTION: "Subscription",
    Invoice.Kind.CREDIT_PURCHASE: "Credit purchase",
}
_WATERMARKS = {Invoice.Status.DRAFT: "DRAFT", Invoice.Status.VOID: "VOID"}
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")  # anything else in a path segment becomes "_"
_BETWEEN = " \u2013 "  # between a period's first and last day
NOT_SHOWN = "\u2014"  # a date the invoice does not have yet (a draft's issue and due dates)


class PdfUrlRefused(ValueError):
    """WeasyPrint asked for a URL that is neither ``data:`` nor a file under a static dir."""


# --- formatting ---------------------------------------------------------------------------


def _money(amount: Decimal, currency: str) -> str:
    """``amount`` with exactly the currency's minor-unit decimals: 1,234.50 USD, 1,235 JPY."""
    value = quantize(amount, currency)
    if value == 0:
        value = abs(value)  # never "-0.00"
    return f"{value:,.{minor_units(currency)}f}"


def _money_exact(amount: Decimal, currency: str) -> str:
    """A tier's exact amount: the currency's decimals, or more when the amount has them."""
    value = amount.normalize()
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > minor_units(currency):
        return f"{value:,f}"
    return _money(amount, currency)


def _number(value: Decimal | str | None) -> str:
    """A quantity or price at full precision, without trailing zeros: 1,469,000 or 0.0008."""
    if value is None:
        return ""
    number = Decimal(value).normalize()
    if number == 0:
        number = Decimal(0)
    return f"{number:,f}"


def _percent(rate: Decimal) -> str:
    """A tax rate fraction as a percentage: 0.2 is "20 %", 0.075 is "7.5 %"."""
    return f"{_number(rate * 100)} %"


def _date(value: date) -> str:
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"


def _local_date(value: datetime | None, zone: ZoneInfo) -> str:
    return NOT_SHOWN if value is None else _date(timezone.localtime(value, zone).date())


def _period(start: datetime, end: datetime, zone: ZoneInfo) -> str:
    """A half-open period as the inclusive dates people read: its end is exclusive, so the last
    day shown is the day of the last instant in it (1 Nov 00:00 to 1 Dec 00:00 is 1 to 30 Nov)."""
    first = timezone.localtime(start, zone).date()
    last = max(first, timezone.localtime(end - timedelta(microseconds=1), zone).date())
    return _date(first) if first == last else f"{_date(first)}{_BETWEEN}{_date(last)}"


# --- context ------------------------------------------------------------------------------


def _tier_label(tier: dict[str, Any]) -> str:
    """Units in ``(after, up_to]``: "Tier 2: above 1,000, up to 10,000"."""
    after = Decimal(tier.get("after") or 0)
    up_to = tier.get("up_to")
    if up_to is None:
        bounds = "all units" if after == 0 else f"above {_number(after)}"
    elif after == 0:
        bounds = f"up to {_number(up_to)}"
    else:
        bounds = f"above {_number(after)}, up to {_number(up_to)}"
    return f"Tier {tier.get('tier')}: {bounds}"


def _tier_context(tier: dict[str, Any], currency: str) -> dict[str, str]:
    flat_fee = Decimal(tier.get("flat_fee") or 0)
    return {
        "label": _tier_label(tier),
        "flat_fee": _money_exact(flat_fee, currency) if flat_fee else "",
        "quantity": _number(tier.get("quantity")),
        "unit_price": _number(tier.get("unit_price")),
        "amount": _money_exact(Decimal(tier.get("amount") or 0), currency),
    }


def _line_context(line: InvoiceLine, currency: str, zone: ZoneInfo) -> dict[str, Any]:
    note = ""
    if line.adjusts_period_start is not None and line.adjusts_period_end is not None:
        note = f"Late usage for {_period(line.adjusts_period_start, line.adjusts_period_end, zone)}"
    return {
        "description": line.description,
        "note": note,
        "quantity": _number(line.quantity),
        "unit_price": _number(line.unit_price),
        "amount": _money(line.amount, currency),
        "tiers": [_tier_context(tier, currency) for tier in line.tiers or []],
    }


def invoice_context(invoice: Invoice) -> dict[str, Any]:
    """Everything ``billing/invoice.html`` shows, formatted: dates in the tenant's timezone,
    money with exactly the currency's minor-unit decimals, no float anywhere."""
    tenant = invoice.tenant
    zone = ZoneInfo(tenant.timezone)
    currency = invoice.currency
    notes = list(invoice.credit_notes.all())
    noted = sum((note.amount for note in notes), Decimal(0))
    return {
        "operator": {
            "name": settings.PERCALL_OPERATOR_NAME,
            "address": settings.PERCALL_OPERATOR_ADDRESS,
            "email": settings.PERCALL_OPERATOR_EMAIL,
            "tax_id": settings.PERCALL_OPERATOR_TAX_ID,
        },
        "tenant": {
            "name": tenant.name,
            "external_id": tenant.external_id,
            "billing_email": tenant.billing_email,
        },
        "number": invoice.number or "DRAFT",
        "status": invoice.status,
        "status_label": Invoice.Status(invoice.status).label,
        "kind": invoice.kind,
        "kind_label": _KINDS.get(Invoice.Kind(invoice.kind), invoice.kind),
        "period": _period(invoice.period_start, invoice.period_end, zone),
        "issued": _local_date(invoice.issued_at, zone),
        "due": _local_date(invoice.due_at, zone),
        "paid": _local_date(invoice.paid_at, zone) if invoice.paid_at else "",
        "voided": _local_date(invoice.voided_at, zone) if invoice.voided_at else "",
        "void_reason": invoice.void_reason,
        "currency": currency,
        "lines": [_line_context(line, currency, zone) for line in invoice.lines.all()],
        "subtotal": _money(invoice.subtotal_amount, currency),
        "credits_applied": _money(-invoice.credits_applied_amount, currency),
        "tax_rate": _percent(invoice.tax_rate),
        "tax": _money(invoice.tax_amount, currency),
        "total": _money(invoice.total_amount, currency),
        "credit_notes": [
            {
                "number": note.number,
                "issued": _local_date(note.issued_at, zone),
                "reason": note.reason,
                "amount": _money(-note.amount, currency),
            }
            for note in notes
        ],
        "credit_notes_total": _money(-noted, currency),
        "balance": _money(invoice.total_amount - noted, currency),
        "watermark": _WATERMARKS.get(Invoice.Status(invoice.status), ""),
    }


def invoice_html(invoice: Invoice) -> str:
    return render_to_string(TEMPLATE, invoice_context(invoice))


# --- PDF ----------------------------------------------------------------------------------


def _static_roots() -> list[Path]:
    """STATIC_ROOT and STATICFILES_DIRS (plain or ``(prefix, path)``), resolved."""
    roots: list[str | Path] = [settings.STATIC_ROOT] if settings.STATIC_ROOT else []
    for entry in getattr(settings, "STATICFILES_DIRS", []):
        roots.append(entry[1] if isinstance(entry, tuple | list) else entry)
    return [Path(root).resolve() for root in roots]


class StaticOnlyUrlFetcher(URLFetcher):
    """Lets WeasyPrint load ``data:`` URLs and files under the static dirs, nothing else: no
    network, no other local file (symlinks are resolved first, so one cannot point out)."""

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "data":
            return super().fetch(url, headers)
        if scheme != "file" or parts.netloc not in ("", "localhost"):
            raise PdfUrlRefused(f"url: {url!r} is not a data: URL or a local static file")
        path = Path(url2pathname(parts.path)).resolve()
        if not path.is_file() or not any(path.is_relative_to(r) for r in _static_roots()):
            raise PdfUrlRefused(f"url: {url!r} is not a file under the static directories")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(
            path.as_uri(), path.read_bytes(), headers={"Content-Type": content_type}
        )


def pdf_from_html(html: str) -> bytes:
    """An HTML document as a PDF. Relative URLs resolve against STATIC_ROOT; nothing outside
    the static dirs can be fetched."""
    roots = _static_roots()
    base_url = f"{roots[0]}{os.sep}" if roots else None
    document = HTML(string=html, base_url=base_url, url_fetcher=StaticOnlyUrlFetcher())
    return document.write_pdf()


def invoice_pdf_bytes(invoice: Invoice) -> bytes:
    """The invoice as an A4 PDF (see ``pdf_from_html``)."""
    return pdf_from_html(invoice_html(invoice))


# --- stored file --------------------------------------------------------------------------


def _name_part(value: str) -> str:
    """A safe path segment: tenant external ids are free text, so "../x" becomes "___x"."""
    return _UNSAFE_NAME.sub("_", value) or "_"


def invoice_pdf_path(invoice: Invoice) -> str:
    """Where an issued invoice's PDF is stored, relative to MEDIA_ROOT. Numbers are unique, so
    two tenants whose ids map to one folder name still never share a file."""
    folder = _name_part(invoice.tenant.external_id)
    return f"invoices/{folder}/{_name_part(invoice.number or '')}.pdf"


def _stored_current(invoice: Invoice) -> Path | None:
    """The stored file, when it shows the invoice's current content."""
    if not invoice.pdf_file or invoice.pdf_hash != invoice.content_hash:
        return None
    path = Path(settings.MEDIA_ROOT) / invoice.pdf_file
    return path if path.is_file() else None


def _invoice_load(invoice_id: str) -> Invoice | None:
    lines = InvoiceLine.objects.order_by("position")
    return (
        Invoice.objects.select_related("tenant")
        .prefetch_related(Prefetch("lines", queryset=lines), "credit_notes")
        .filter(id=invoice_id)
        .first()
    )


def _temp_write(directory: Path, name: str, content: bytes) -> Path:
    """``content`` in a new file next to its final place, flushed to disk."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        # Invoices are private: owner and group (a web process sharing the worker's group).
        os.fchmod(fd, 0o640)
        with os.fdopen(fd, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return Path(temp)


@transaction.atomic(durable=True)
def _pdf_install(*, invoice_id: UUID, rendered_hash: str, temp: Path, relative: str) -> bool:
    """Move the rendered file into place and record it, under the invoice's row lock, only if
    the invoice still shows what was rendered; False (file discarded) when it changed since.
    Without the lock a stale render finishing late could replace a newer file. (On SQLite the
    IMMEDIATE transaction's write lock serializes this section instead.)"""
    current = invoices_for_update().filter(id=invoice_id).values_list("content_hash", flat=True)
    if list(current) != [rendered_hash]:
        return False
    os.replace(temp, Path(settings.MEDIA_ROOT) / relative)
    updated = Invoice.objects.filter(id=invoice_id, content_hash=rendered_hash).update(
        pdf_file=relative, pdf_hash=rendered_hash
    )
    return updated == 1


def invoice_pdf_render(*, invoice_id: str) -> str:
    """Render and store an issued invoice's PDF, unless the stored one already shows its
    current content. Idempotent, safe to run twice or concurrently: the file is replaced
    atomically and recorded with a conditional UPDATE, so stale output never wins. Returns
    "rendered", "unchanged" or "skipped: <why>"."""
    invoice = _invoice_load(invoice_id)
    if invoice is None:
        logger.warning("invoice pdf: invoice %s not found", invoice_id)
        return "skipped: not found"
    if invoice.status == Invoice.Status.DRAFT:
        return "skipped: draft"
    if not invoice.number:
        return "skipped: never issued"  # a draft that was voided
    if _stored_current(invoice) is not None:
        return "unchanged"
    rendered_hash = invoice.content_hash
    content = invoice_pdf_bytes(invoice)
    relative = invoice_pdf_path(invoice)
    final = Path(settings.MEDIA_ROOT) / relative
    temp = _temp_write(final.parent, final.name, content)
    try:
        installed = _pdf_install(
            invoice_id=invoice.id, rendered_hash=rendered_hash, temp=temp, relative=relative
        )
    finally:
        temp.unlink(missing_ok=True)  # already moved when installed
    if not installed:
        logger.info("invoice pdf: %s changed while rendering; left to its own render", invoice_id)
        return "skipped: content changed"
    return "rendered"


def invoice_pdf_for_download(invoice: Invoice) -> bytes:
    """The stored PDF when it shows the current content, else rendered now (not stored: the
    render task does that). Drafts are always rendered now, with their DRAFT watermark."""
    if invoice.status != Invoice.Status.DRAFT:
        stored = _stored_current(invoice)
        if stored is not None:
            try:
                return stored.read_bytes()
            except OSError:
                logger.warning("invoice pdf: cannot read %s; rendering it now", stored)
    return invoice_pdf_bytes(invoice)
