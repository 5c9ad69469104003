"""Statement exports: CSV for the general ledger and FOCUS 1.2 rows.

Both read the effective statements of a month (``selectors.statements_effective``) and only
their lines, so their sums equal the statements to the cent. In FOCUS, a cost center's first
issued statement gives its rows; each correction issued since adds rows of the difference
per line (``ChargeClass`` ``Correction``), so a month's rows always sum to what stands. A
correction's rows (its InvoiceId) therefore sum to the change it makes, its total less the
total it corrects: what a consumer that already loaded the first export has to add.
Without an issued statement, the draft's rows are exported (``x_StatementStatus`` says so).
"""

import csv
import io
import json
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Prefetch

from apps.chargeback.models import Statement, StatementLine
from apps.chargeback.selectors import statement_list, statements_effective
from apps.core.money import quantize

FOCUS_COLUMNS = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SubAccountId",
    "SubAccountName",
    "Tags",
)
CUSTOM_COLUMNS = (
    "x_Feature",
    "x_Workflow",
    "x_Model",
    "x_InputTokens",
    "x_OutputTokens",
    "x_AllocationMethod",
    "x_GlAccount",
    "x_StatementStatus",
)
UNALLOCATED_ID = "unallocated"


def _utc(day: date) -> str:
    return datetime.combine(day, time(), tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _account_id() -> str:
    return re.sub(r"[^a-z0-9]+", "-", settings.PERCALL_OPERATOR_NAME.lower()).strip("-")


def _line_key(line: StatementLine) -> tuple:
    if line.kind == StatementLine.Kind.ALLOCATED:
        return ("allocated", line.pool_id)
    return ("direct", line.day, line.service, line.feature, line.provider, line.model)


def _focus_row(
    statement: Statement, line: StatementLine, amount: Decimal, correction: bool
) -> dict[str, Any]:
    operator = settings.PERCALL_OPERATOR_NAME
    center = statement.cost_center
    allocated = line.kind == StatementLine.Kind.ALLOCATED
    if allocated or line.day is None:
        start, end = statement.period_start, statement.period_end
    else:
        start, end = line.day, line.day + timedelta(days=1)
    if line.model:
        category, subcategory = "AI and Machine Learning", "Generative AI"
    elif allocated:
        category, subcategory = "Other", ""
    elif line.provider:
        category, subcategory = "Web", ""
    else:
        category, subcategory = "Compute", ""
    text = format(quantize(amount, statement.currency), "f")
    tags = {k: v for k, v in (("feature", line.feature), ("service", line.service)) if v}
    return {
        "BilledCost": text,
        "BillingAccountId": _account_id(),
        "BillingAccountName": operator,
        "BillingCurrency": statement.currency,
        "BillingPeriodEnd": _utc(statement.period_end),
        "BillingPeriodStart": _utc(statement.period_start),
        "ChargeCategory": "Usage",
        "ChargeClass": "Correction" if correction else "",
        "ChargeDescription": line.description,
        "ChargeFrequency": "Recurring" if allocated else "Usage-Based",
        "ChargePeriodEnd": _utc(end),
        "ChargePeriodStart": _utc(start),
        "ConsumedQuantity": "" if allocated else str(line.calls),
        "ConsumedUnit": "" if allocated else "Requests",
        "ContractedCost": text,
        "EffectiveCost": text,
        "InvoiceId": statement.number or "",
        "InvoiceIssuerName": operator,
        "ListCost": text,
        "PricingQuantity": "1" if allocated else str(line.calls),
        "PricingUnit": "Month" if allocated else "Requests",
        "ProviderName": line.provider or operator,
        "PublisherName": line.provider or operator,
        "ServiceCategory": category,
        "ServiceName": (line.pool.name if allocated and line.pool else "")
        or line.service
        or line.provider
        or "Unattributed",
        "ServiceSubcategory": subcategory,
        "SubAccountId": center.code if center else UNALLOCATED_ID,
        "SubAccountName": center.name if center else "Unallocated",
        "Tags": json.dumps(tags, sort_keys=True),
        "x_Feature": line.feature,
        "x_Workflow": line.workflow,
        "x_Model": line.model,
        "x_InputTokens": "" if allocated else str(line.input_tokens),
        "x_OutputTokens": "" if allocated else str(line.output_tokens),
        "x_AllocationMethod": line.method,
        "x_GlAccount": center.gl_account if center else "",
        "x_StatementStatus": statement.status,
    }


def focus_rows(*, period_start: date) -> list[dict[str, Any]]:
    """The FOCUS rows of a month, in column order."""
    effective = statements_effective(period_start=period_start)
    issued_chains: dict[Any, list[Statement]] = {}
    issued_rows = (
        statement_list(period_start=period_start)
        .filter(status=Statement.Status.ISSUED)
        .prefetch_related(
            Prefetch(
                "lines", queryset=StatementLine.objects.select_related("pool").order_by("position")
            )
        )
    )
    for s in issued_rows:
        issued_chains.setdefault(s.cost_center_id, []).append(s)
    rows: list[dict[str, Any]] = []
    for statement in effective:
        chain = sorted(
            issued_chains.get(statement.cost_center_id, []),
            key=lambda s: (s.issued_at is None, s.issued_at or statement.drafted_at),
        )
        if statement.status == Statement.Status.DRAFT or not chain:
            rows.extend(_focus_row(statement, ln, ln.amount, False) for ln in statement.lines.all())
            continue
        previous: dict[tuple, tuple[Statement, StatementLine]] = {}
        for index, issued in enumerate(chain):
            lines = {_line_key(ln): ln for ln in issued.lines.all()}
            for key in sorted(set(lines) | set(previous), key=str):
                line = lines.get(key)
                before = previous.get(key)
                old = before[1].amount if before else Decimal(0)
                new = line.amount if line else Decimal(0)
                if index and new == old:
                    continue
                source = line or before[1]  # type: ignore[index]
                rows.append(_focus_row(issued, source, new - old, correction=index > 0))
            previous = {k: (issued, ln) for k, ln in lines.items()}
    return rows


def _csv(header: Iterable[str], rows: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(header), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def focus_csv(*, period_start: date) -> str:
    """FOCUS 1.2 as CSV: a header row of column names, FOCUS columns then ``x_`` ones."""
    return _csv((*FOCUS_COLUMNS, *CUSTOM_COLUMNS), focus_rows(period_start=period_start))


GL_COLUMNS = (
    "period",
    "statement",
    "status",
    "cost_center",
    "cost_center_name",
    "gl_account",
    "kind",
    "description",
    "amount",
    "currency",
)


def gl_csv(*, period_start: date) -> str:
    """One row per cost center, kind and service (or pool) for the general ledger; the
    amounts of a statement sum to its total."""
    rows = []
    for statement in statements_effective(period_start=period_start):
        center = statement.cost_center
        grouped: dict[tuple[str, str], Decimal] = {}
        for line in statement.lines.all():
            label = (
                line.description
                if line.kind == StatementLine.Kind.ALLOCATED
                else line.service or "Unattributed"
            )
            grouped[(line.kind, label)] = grouped.get((line.kind, label), Decimal(0)) + line.amount
        for (kind, label), amount in sorted(grouped.items()):
            rows.append(
                {
                    "period": statement.period_start.strftime("%Y-%m"),
                    "statement": statement.number or "",
                    "status": statement.status,
                    "cost_center": center.code if center else UNALLOCATED_ID,
                    "cost_center_name": center.name if center else "Unallocated",
                    "gl_account": center.gl_account if center else "",
                    "kind": kind,
                    "description": label,
                    "amount": format(quantize(amount, statement.currency), "f"),
                    "currency": statement.currency,
                }
            )
    return _csv(GL_COLUMNS, rows)
