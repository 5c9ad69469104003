"""Invoices to review: drafts and what changed since their last refresh; finalize, void (and
reissue) and credit notes through billing's operations services, each behind an explicit
confirmation; the PDF as the partner gets it."""

from uuid import UUID

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.billing.errors import InvoiceNotFound
from apps.billing.models import Invoice
from apps.billing.selectors import invoice_get, invoice_list, invoice_totals_noted
from apps.billing.services.operations import credit_note_issue, invoice_finalize, invoice_void
from apps.billing.services.pdf import invoice_pdf_for_download
from apps.console.access import finance_required
from apps.console.drafts import draft_changes
from apps.console.forms import ConfirmForm, CreditNoteForm, InvoiceFilterForm, VoidForm
from apps.core.errors import ApplicationError

PAGE_SIZE = 50


@require_GET
@finance_required
def invoices(request: HttpRequest) -> HttpResponse:
    form = InvoiceFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "console/invoices.html", {"form": form}, status=400)
    status = form.cleaned_data["status"] or Invoice.Status.DRAFT
    rows = invoice_list(scope_tenant_id=None, status=status)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "console/invoices.html", {"form": form, "page": page, "status": status})


def _detail(request: HttpRequest, invoice: Invoice, status: int = 200, **forms) -> HttpResponse:
    context = {
        "invoice": invoice,
        "changes": draft_changes(invoice=invoice),
        "noted": invoice_totals_noted(invoice=invoice),
        "finalize_form": forms.get("finalize_form") or ConfirmForm(prefix="finalize"),
        "void_form": forms.get("void_form") or VoidForm(prefix="void"),
        "note_form": forms.get("note_form") or CreditNoteForm(prefix="note"),
    }
    return render(request, "console/invoice.html", context, status=status)


def _invoice(invoice_id: UUID) -> Invoice | None:
    try:
        return invoice_get(invoice_id=invoice_id, scope_tenant_id=None)
    except InvoiceNotFound:
        return None


@require_GET
@finance_required
def invoice(request: HttpRequest, invoice_id: UUID) -> HttpResponse:
    found = _invoice(invoice_id)
    if found is None:
        return render(request, "console/not_found.html", status=404)
    return _detail(request, found)


@require_GET
@finance_required
def invoice_pdf(request: HttpRequest, invoice_id: UUID) -> HttpResponse:
    found = _invoice(invoice_id)
    if found is None:
        return render(request, "console/not_found.html", status=404)
    response = HttpResponse(invoice_pdf_for_download(found), content_type="application/pdf")
    name = found.number or f"draft-{found.id}"
    response["Content-Disposition"] = f'attachment; filename="invoice-{name}.pdf"'
    return response


def _done(request: HttpRequest, invoice: Invoice, text: str) -> HttpResponse:
    messages.success(request, text)
    return HttpResponseRedirect(reverse("console:invoice", args=[invoice.id]))


@require_POST
@finance_required
def invoice_act(request: HttpRequest, invoice_id: UUID, action: str) -> HttpResponse:
    """Finalize, void or credit one invoice. A form error or a refusal from the service
    re-renders the invoice with the reason next to the field, and nothing is changed."""
    found = _invoice(invoice_id)
    if found is None or action not in ("finalize", "void", "credit-note"):
        return render(request, "console/not_found.html", status=404)
    form_class, prefix, key = {
        "finalize": (ConfirmForm, "finalize", "finalize_form"),
        "void": (VoidForm, "void", "void_form"),
        "credit-note": (CreditNoteForm, "note", "note_form"),
    }[action]
    form = form_class(request.POST, prefix=prefix)
    if not form.is_valid():
        return _detail(request, found, 400, **{key: form})
    data = form.cleaned_data
    try:
        if action == "finalize":
            done = invoice_finalize(invoice_id=found.id)
            return _done(request, done, f"Invoice {done.number} finalized.")
        if action == "void":
            done = invoice_void(invoice_id=found.id, reason=data["reason"], reissue=data["reissue"])
            reissued = done.id != found.id
            text = f"Invoice {found.number or 'draft'} voided" + (
                "; a new draft replaces it." if reissued else "."
            )
            return _done(request, done, text)
        note = credit_note_issue(invoice_id=found.id, amount=data["amount"], reason=data["reason"])
        return _done(request, found, f"Credit note {note.number} issued.")
    except ApplicationError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return _detail(request, _invoice(found.id) or found, exc.status_code, **{key: form})
