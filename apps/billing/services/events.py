"""What billing tells the world, through the outbox (``invoice.finalized``, ``.voided``,
``.paid``), in the transaction that made the change."""

from collections.abc import Iterable
from typing import Any

from apps.billing.models import Invoice
from apps.core.money import quantize
from apps.core.outbox import outbox_publish_many
from apps.tenants.models import Tenant


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def invoice_event_data(invoice: Invoice, *, tenant_external_id: str) -> dict[str, Any]:
    currency = invoice.currency
    return {
        "invoice": {
            "id": str(invoice.id),
            "number": invoice.number,
            "tenant": tenant_external_id,
            "kind": invoice.kind,
            "status": invoice.status,
            "currency": currency,
            "period_start": _iso(invoice.period_start),
            "period_end": _iso(invoice.period_end),
            "subtotal": str(quantize(invoice.subtotal_amount, currency)),
            "credits_applied": str(quantize(invoice.credits_applied_amount, currency)),
            "tax": str(quantize(invoice.tax_amount, currency)),
            "total": str(quantize(invoice.total_amount, currency)),
            "due_at": _iso(invoice.due_at),
        }
    }


def invoices_event_publish(*, topic: str, invoices: Iterable[Invoice]) -> None:
    """One event per invoice, in one insert (a billing run finalizes thousands at once)."""
    rows = list(invoices)
    external = dict(
        Tenant.objects.filter(id__in={i.tenant_id for i in rows}).values_list("id", "external_id")
    )
    outbox_publish_many(
        events=[
            (topic, invoice_event_data(i, tenant_external_id=external[i.tenant_id]), i.tenant_id)
            for i in rows
        ]
    )
