"""Billing in the admin: everything visible, nothing editable.

Subscriptions, invoices, the credit ledger, credit notes, numbers and idempotency records change
only through their services (subscribe, billing runs, finalize, void, credit notes...), which
hold the locks, keep the ledgers append-only and the numbers gapless. The admin adds no write
path around them. Staff can download an invoice's PDF from its page.
"""

from typing import Any

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from apps.billing.models import (
    CreditDebit,
    CreditGrant,
    CreditNote,
    IdempotentRequest,
    Invoice,
    InvoiceLine,
    NumberCounter,
    PlanChange,
    Subscription,
)
from apps.billing.services.pdf import invoice_pdf_for_download
from apps.core.money import quantize


def _money(amount: Any, currency: str) -> str:
    return f"{quantize(amount, currency)} {currency}"


class ReadOnly:
    """Nothing added, changed or deleted here: the services are the only write path."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnly, admin.ModelAdmin):
    pass


class ReadOnlyInline(ReadOnly, admin.TabularInline):
    extra = 0


class PlanChangeInline(ReadOnlyInline):
    model = PlanChange
    fields = readonly_fields = ("plan", "effective_at", "created_at")


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    """Subscribed, changed and canceled through the API (``subscription_*`` services)."""

    list_display = [
        "tenant",
        "plan",
        "started_at",
        "trial_ends_at",
        "ends_at",
        "canceled_at",
        "billed_through",
    ]
    list_filter = ["plan"]
    list_select_related = ["tenant", "plan"]
    search_fields = ["tenant__external_id", "tenant__name", "plan__code"]
    inlines = [PlanChangeInline]


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = readonly_fields = (
        "position",
        "kind",
        "description",
        "meter_code",
        "quantity",
        "unit_price",
        "amount",
    )
    ordering = ["position"]


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    """Drafted, finalized, voided and credited only by the billing services."""

    list_display = [
        "__str__",
        "tenant",
        "kind",
        "status",
        "period_start",
        "period_end",
        "total",
        "issued_at",
    ]
    list_display_links = ["__str__"]
    list_filter = ["status", "kind", "currency"]
    list_select_related = ["tenant"]
    search_fields = ["number", "tenant__external_id", "tenant__name"]
    date_hierarchy = "period_start"
    fields = readonly_fields = (
        "pdf",
        "number",
        "status",
        "kind",
        "tenant",
        "subscription",
        "currency",
        "period_start",
        "period_end",
        "plan",
        "rate_card_version",
        "subtotal_amount",
        "credits_applied_amount",
        "tax_rate",
        "tax_amount",
        "total_amount",
        "refreshed_at",
        "issued_at",
        "due_at",
        "paid_at",
        "voided_at",
        "void_reason",
        "reissue_of",
        "content_hash",
        "pdf_file",
        "pdf_hash",
    )
    inlines = [InvoiceLineInline]

    @admin.display(description="total", ordering="total_amount")
    def total(self, obj: Invoice) -> str:
        return _money(obj.total_amount, obj.currency)

    @admin.display(description="PDF")
    def pdf(self, obj: Invoice) -> str:
        url = reverse("admin:billing_invoice_pdf", args=[obj.pk])
        return format_html('<a href="{}">Download PDF</a>', url)

    def get_urls(self) -> list[URLPattern]:
        # Before the defaults: their "<path:object_id>/" would take this one.
        pdf = path(
            "<path:object_id>/pdf/",
            self.admin_site.admin_view(self.pdf_view),
            name="billing_invoice_pdf",
        )
        return [pdf, *super().get_urls()]

    def pdf_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The invoice's PDF for staff, as the API serves it to a tenant's key."""
        invoice = self.get_object(request, object_id)
        if invoice is None or not self.has_view_permission(request, invoice):
            raise Http404("No such invoice")
        response = HttpResponse(invoice_pdf_for_download(invoice), content_type="application/pdf")
        name = invoice.number or f"draft-{invoice.id}"
        response["Content-Disposition"] = f'inline; filename="{name}.pdf"'
        return response


class CreditDebitInline(ReadOnlyInline):
    model = CreditDebit
    fields = readonly_fields = ("created_at", "kind", "invoice", "amount")


@admin.register(CreditGrant)
class CreditGrantAdmin(ReadOnlyAdmin):
    """Append-only ledger: grants are issued by services, spent and refunded as debits."""

    list_display = [
        "tenant",
        "remaining",
        "amount_shown",
        "effective_at",
        "expires_at",
        "pack",
        "reason",
    ]
    list_filter = ["currency", "pack"]
    list_select_related = ["tenant", "pack"]
    search_fields = ["tenant__external_id", "tenant__name", "reason"]
    inlines = [CreditDebitInline]

    @admin.display(description="remaining", ordering="remaining_amount")
    def remaining(self, obj: CreditGrant) -> str:
        return _money(obj.remaining_amount, obj.currency)

    @admin.display(description="amount", ordering="amount")
    def amount_shown(self, obj: CreditGrant) -> str:
        return _money(obj.amount, obj.currency)


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyAdmin):
    list_display = ["number", "invoice", "amount_shown", "reason", "issued_at"]
    list_select_related = ["invoice"]
    search_fields = ["number", "invoice__number", "reason"]
    date_hierarchy = "issued_at"

    @admin.display(description="amount", ordering="amount")
    def amount_shown(self, obj: CreditNote) -> str:
        return _money(obj.amount, obj.currency)


@admin.register(NumberCounter)
class NumberCounterAdmin(ReadOnlyAdmin):
    """The last number of each series; allocated under its row lock at finalization."""

    list_display = ["series", "last"]


@admin.register(IdempotentRequest)
class IdempotentRequestAdmin(ReadOnlyAdmin):
    list_display = ["scope", "key", "status_code", "created_at"]
    list_filter = ["status_code"]
    search_fields = ["scope", "key"]
