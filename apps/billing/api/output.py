"""How billing objects read in the API: amounts as strings with exactly the currency's decimals,
quantities and prices at full precision without trailing zeros, times in ISO 8601."""

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from apps.billing.models import Invoice, InvoiceLine, Subscription
from apps.billing.selectors import CreditsView, Preview
from apps.core.money import quantize
from apps.rating.invoices import PricedLine


def money(amount: Decimal, currency: str) -> str:
    """'12.30' for USD, '1230' for JPY, '1.230' for KWD: exactly the minor unit's decimals."""
    return str(quantize(amount, currency))


def number(value: Decimal | None) -> str | None:
    """A quantity or price in full, plainly: '0.000002', '1500000' (never 1.5E+6)."""
    return None if value is None else format(value.normalize(), "f")


def _iso(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat()


class LineOutput(serializers.Serializer):
    kind = serializers.CharField()
    description = serializers.CharField()
    meter = serializers.CharField(allow_blank=True)
    quantity = serializers.CharField(allow_null=True)
    unit_price = serializers.CharField(allow_null=True)
    amount = serializers.CharField()
    tiers = serializers.ListField(child=serializers.DictField())
    dimensions = serializers.DictField(child=serializers.CharField())
    adjusts_period_start = serializers.DateTimeField(allow_null=True)


class InvoiceSummaryOutput(serializers.Serializer):
    id = serializers.UUIDField()
    number = serializers.CharField(allow_null=True)
    tenant = serializers.CharField()
    kind = serializers.CharField()
    status = serializers.CharField()
    currency = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    issued_at = serializers.DateTimeField(allow_null=True)
    due_at = serializers.DateTimeField(allow_null=True)
    subtotal = serializers.CharField()
    credits_applied = serializers.CharField()
    tax = serializers.CharField()
    total = serializers.CharField()


class InvoiceOutput(InvoiceSummaryOutput):
    tax_rate = serializers.CharField()
    plan = serializers.CharField(allow_null=True)
    voided_at = serializers.DateTimeField(allow_null=True)
    void_reason = serializers.CharField(allow_blank=True)
    reissue_of = serializers.UUIDField(allow_null=True)
    lines = LineOutput(many=True)
    credit_notes = serializers.ListField(child=serializers.DictField())


def line_dict(line: InvoiceLine, currency: str) -> dict[str, Any]:
    return {
        "kind": line.kind,
        "description": line.description,
        "meter": line.meter_code,
        "quantity": number(line.quantity),
        "unit_price": number(line.unit_price),
        "amount": money(line.amount, currency),
        "tiers": line.tiers,
        "dimensions": line.dimensions,
        "adjusts_period_start": _iso(line.adjusts_period_start),
    }


def invoice_summary(invoice: Invoice) -> dict[str, Any]:
    c = invoice.currency
    return {
        "id": str(invoice.id),
        "number": invoice.number,
        "tenant": invoice.tenant.external_id,
        "kind": invoice.kind,
        "status": invoice.status,
        "currency": c,
        "period_start": _iso(invoice.period_start),
        "period_end": _iso(invoice.period_end),
        "issued_at": _iso(invoice.issued_at),
        "due_at": _iso(invoice.due_at),
        "subtotal": money(invoice.subtotal_amount, c),
        "credits_applied": money(invoice.credits_applied_amount, c),
        "tax": money(invoice.tax_amount, c),
        "total": money(invoice.total_amount, c),
    }


def invoice_dict(invoice: Invoice) -> dict[str, Any]:
    c = invoice.currency
    return {
        **invoice_summary(invoice),
        "tax_rate": number(invoice.tax_rate),
        "plan": invoice.plan.code if invoice.plan else None,
        "voided_at": _iso(invoice.voided_at),
        "void_reason": invoice.void_reason,
        "reissue_of": str(invoice.reissue_of_id) if invoice.reissue_of_id else None,
        "lines": [line_dict(line, c) for line in invoice.lines.all()],
        "credit_notes": [
            {
                "number": note.number,
                "amount": money(note.amount, c),
                "reason": note.reason,
                "issued_at": _iso(note.issued_at),
            }
            for note in invoice.credit_notes.all()
        ],
    }


def _priced_line(line: PricedLine, currency: str) -> dict[str, Any]:
    return {
        "kind": line.kind.value,
        "description": line.description,
        "meter": line.meter,
        "quantity": number(line.quantity),
        "unit_price": number(line.unit_price),
        "amount": money(line.amount, currency),
        "tiers": [
            {
                "tier": s.tier,
                "after": number(s.after),
                "up_to": number(s.up_to),
                "quantity": number(s.quantity),
                "unit_price": number(s.unit_price),
                "flat_fee": number(s.flat_fee),
                "amount": number(s.amount),
            }
            for s in line.tiers
        ],
        "dimensions": dict(line.dimensions),
    }


def preview_dict(preview: Preview) -> dict[str, Any]:
    priced, c = preview.priced, preview.priced.currency
    return {
        "tenant": preview.bill.tenant.external_id,
        "plan": preview.bill.plan.code,
        "currency": c,
        "period_start": _iso(preview.period.start),
        "period_end": _iso(preview.period.end),
        "lines": [_priced_line(line, c) for line in priced.lines],
        "subtotal": money(priced.subtotal, c),
        "credits_applied": money(priced.credits_applied, c),
        "tax": money(priced.tax, c),
        "total": money(priced.total, c),
    }


def subscription_dict(subscription: Subscription) -> dict[str, Any]:
    changes = [
        {"plan": change.plan.code, "effective_at": _iso(change.effective_at)}
        for change in subscription.plan_changes.select_related("plan").order_by("effective_at")
    ]
    return {
        "id": str(subscription.id),
        "tenant": subscription.tenant.external_id,
        "plan": subscription.plan.code,
        "started_at": _iso(subscription.started_at),
        "trial_ends_at": _iso(subscription.trial_ends_at),
        "ends_at": _iso(subscription.ends_at),
        "canceled_at": _iso(subscription.canceled_at),
        "billed_through": _iso(subscription.billed_through),
        "plan_changes": changes,
    }


def credits_dict(view: CreditsView) -> dict[str, Any]:
    c = view.currency
    return {
        "currency": c,
        "balance": money(view.balance, c),
        "grants": [
            {
                "id": str(g.grant.id),
                "amount": money(g.grant.amount, g.grant.currency),
                "remaining": money(g.grant.remaining_amount, g.grant.currency),
                "consumed": money(g.consumed, g.grant.currency),
                "currency": g.grant.currency,
                "effective_at": _iso(g.grant.effective_at),
                "expires_at": _iso(g.grant.expires_at),
                "usable": g.usable,
                "reason": g.grant.reason,
                "movements": [
                    {
                        "kind": d.kind,
                        "invoice": d.invoice.number or str(d.invoice_id),
                        "amount": money(d.amount, g.grant.currency),
                        "at": _iso(d.created_at),
                    }
                    for d in g.debits
                ],
            }
            for g in view.grants
        ],
    }
