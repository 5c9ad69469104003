"""Credits: grants, what each invoice consumed, and buying a pack (billing+ roles)."""

from collections import defaultdict
from decimal import Decimal
from typing import Any
from uuid import uuid4

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST, require_safe

from apps.billing.models import CreditDebit, Invoice
from apps.billing.selectors import CreditsView, tenant_credits
from apps.billing.services.purchases import credit_pack_purchase, idempotent
from apps.catalog.selectors import credit_pack_get
from apps.core.errors import ApplicationError
from apps.portal.access import Portal, Role, portal_view
from apps.portal.forms import PurchaseForm
from apps.portal.selectors import credit_pack_list
from apps.portal.views.common import page


def _per_invoice(view: CreditsView) -> list[tuple[Invoice, Decimal]]:
    """Credits each invoice consumed across grants, net of refunds (a voided invoice's
    credits go back), newest first."""
    spent: dict[Any, Decimal] = defaultdict(Decimal)
    invoices: dict[Any, Invoice] = {}
    for grant in view.grants:
        for debit in grant.debits:
            sign = 1 if debit.kind == CreditDebit.Kind.DEBIT else -1
            spent[debit.invoice_id] += sign * debit.amount
            invoices[debit.invoice_id] = debit.invoice
    rows = [(invoices[key], amount) for key, amount in spent.items()]
    return sorted(rows, key=lambda row: row[0].period_start, reverse=True)


@require_safe
@portal_view()
def credits(request: HttpRequest, portal: Portal) -> HttpResponse:
    tenant = portal.tenant
    view = tenant_credits(tenant_id=tenant.id, currency=tenant.currency)
    context = {
        "credits": view,
        "per_invoice": _per_invoice(view),
        "packs": list(credit_pack_list(currency=tenant.currency)),
        # One token per page view: submitting the same form twice buys one pack.
        "token": uuid4(),
        "may_buy": portal.may(Role.BILLING),
    }
    return page(request, portal, "portal/credits.html", context, section="credits")


@require_POST
@portal_view(role=Role.BILLING)
def credit_purchase(request: HttpRequest, portal: Portal) -> HttpResponse:
    form = PurchaseForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The purchase form was incomplete: choose a pack and try again.")
        return redirect("portal:credits")
    code, tenant = form.cleaned_data["pack"], portal.tenant

    def purchase() -> tuple[int, Any]:
        invoice = credit_pack_purchase(tenant=tenant, pack=credit_pack_get(code=code))
        return 201, {"invoice_id": str(invoice.id), "number": invoice.number}

    try:
        _, body = idempotent(
            scope=f"portal-credit-purchase:{tenant.id}",
            key=f"{form.cleaned_data['token']}:{code}",
            request={"pack": code},
            work=purchase,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("portal:credits")
    messages.success(request, f"Pack bought: invoice {body['number']} is issued.")
    return redirect("portal:invoice", invoice_id=body["invoice_id"])
