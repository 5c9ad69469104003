"""Statement PDFs, rendered on request by WeasyPrint (statements are internal documents read
rarely; an issued one never changes, so every render of it shows the same)."""

from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string

from apps.billing.services.pdf import pdf_from_html
from apps.chargeback.models import Statement, StatementLine
from apps.core.money import quantize

TEMPLATE = "chargeback/statement.html"
_SECTIONS = (("service", "service"), ("feature", "feature"), ("provider and model", None))


def _money(amount: Decimal | None, currency: str) -> str:
    if amount is None:
        return ""
    return f"{quantize(amount, currency):,} {currency}"


def statement_context(statement: Statement) -> dict[str, Any]:
    currency = statement.currency
    direct = [ln for ln in statement.lines.all() if ln.kind == StatementLine.Kind.DIRECT]
    sections = []
    for title, attr in _SECTIONS:
        sums: dict[str, list] = defaultdict(lambda: [0, Decimal(0)])
        for line in direct:
            label = (
                getattr(line, attr)
                if attr
                else " / ".join(v for v in (line.provider, line.model) if v) or "internal"
            ) or "(none)"
            sums[label][0] += line.calls
            sums[label][1] += line.amount
        rows = sorted(sums.items(), key=lambda kv: (-kv[1][1], kv[0]))
        sections.append(
            {
                "title": title,
                "rows": [
                    {"label": k, "calls": f"{v[0]:,}", "amount": _money(v[1], currency)}
                    for k, v in rows
                ],
            }
        )
    center = statement.cost_center
    return {
        "number": statement.number or "(draft)",
        "kind_label": "Correction statement" if statement.corrects_id else "Statement",
        "watermark": "DRAFT" if statement.status == Statement.Status.DRAFT else "",
        "operator": settings.PERCALL_OPERATOR_NAME,
        "period": statement.period_start.strftime("%B %Y") + " (UTC)",
        "cost_center": f"{center.code} {center.name}" if center else "Unallocated",
        "gl_account": center.gl_account if center else "",
        "issued": statement.issued_at.strftime("%Y-%m-%d") if statement.issued_at else "\u2014",
        "corrects": statement.corrects.number if statement.corrects else "",
        "reason": statement.correction_reason,
        "direct": _money(statement.direct_amount, currency),
        "allocated": _money(statement.allocated_amount, currency),
        "total": _money(statement.total_amount, currency),
        "budget": _money(statement.budget_amount, currency),
        "variance": _money(statement.variance_amount, currency),
        "calls": f"{statement.calls:,}",
        "uncosted": f"{statement.uncosted_calls:,}" if statement.uncosted_calls else "",
        "sections": sections,
        "allocations": [
            {"label": ln.description, "method": ln.method, "amount": _money(ln.amount, currency)}
            for ln in statement.lines.all()
            if ln.kind == StatementLine.Kind.ALLOCATED
        ],
        "drivers": [
            {**d, "amount": _money(Decimal(d["amount"]), currency)} for d in statement.drivers
        ],
    }


def statement_pdf_bytes(statement: Statement) -> bytes:
    return pdf_from_html(render_to_string(TEMPLATE, statement_context(statement)))
