"""Invoices: the list, one invoice with its lines and tier breakdowns, its PDF. Partners see
issued invoices only (finalized, paid, void): a draft is still the operator's to review, and
the running invoice of the open period is on the home page."""

from uuid import UUID

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from apps.billing.errors import InvoiceNotFound
from apps.billing.models import Invoice
from apps.billing.selectors import invoice_get, invoice_list
from apps.billing.services.pdf import invoice_pdf_for_download
from apps.portal.access import Portal, portal_view
from apps.portal.views.common import page

PER_PAGE = 25


def _issued(portal: Portal, invoice_id: UUID) -> Invoice:
    try:
        invoice = invoice_get(invoice_id=invoice_id, scope_tenant_id=portal.tenant.id)
    except InvoiceNotFound as exc:
        raise Http404("no such invoice") from exc
    if invoice.status == Invoice.Status.DRAFT:
        raise Http404("no such invoice")
    return invoice


@require_safe
@portal_view()
def invoice_index(request: HttpRequest, portal: Portal) -> HttpResponse:
    rows = invoice_list(scope_tenant_id=portal.tenant.id, tenant_id=portal.tenant.id).exclude(
        status=Invoice.Status.DRAFT
    )
    invoices = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    return page(request, portal, "portal/invoices.html", {"invoices": invoices}, section="invoices")


@require_safe
@portal_view()
def invoice_detail(request: HttpRequest, portal: Portal, invoice_id: UUID) -> HttpResponse:
    invoice = _issued(portal, invoice_id)
    lines = list(invoice.lines.all())
    notes = list(invoice.credit_notes.all())
    context = {"invoice": invoice, "lines": lines, "credit_notes": notes}
    return page(request, portal, "portal/invoice.html", context, section="invoices")


@require_safe
@portal_view()
def invoice_pdf(request: HttpRequest, portal: Portal, invoice_id: UUID) -> HttpResponse:
    invoice = _issued(portal, invoice_id)
    response = HttpResponse(invoice_pdf_for_download(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{invoice.number or invoice.id}.pdf"'
    return response
