"""What changed on a draft invoice since it was last priced (``refreshed_at``): the draft's
stored lines against the same period priced again now from the rollups (billing's
``invoice_preview``; nothing is stored)."""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from apps.billing.models import Invoice
from apps.billing.selectors import invoice_preview

ZERO = Decimal(0)


@dataclass(frozen=True)
class LineChange:
    description: str
    quantity_before: Decimal | None
    quantity_now: Decimal | None
    amount_before: Decimal
    amount_now: Decimal

    @property
    def delta(self) -> Decimal:
        return self.amount_now - self.amount_before


@dataclass(frozen=True)
class DraftChanges:
    changes: list[LineChange]  # only lines whose quantity or amount moved, or that came or went
    subtotal_before: Decimal
    subtotal_now: Decimal

    @property
    def delta(self) -> Decimal:
        return self.subtotal_now - self.subtotal_before


def _line_id(key: str, dimensions: dict) -> tuple:
    return key[:64], tuple(sorted((str(k), str(v)) for k, v in dimensions.items()))


def draft_changes(*, invoice: Invoice) -> DraftChanges | None:
    """The draft's lines that would change if it were refreshed now; None for an invoice that
    is not a subscription draft, or whose period no longer prices (a cancelled plan)."""
    if invoice.status != Invoice.Status.DRAFT or invoice.kind != Invoice.Kind.SUBSCRIPTION:
        return None
    # The last instant of the draft's period (or now, for the running period).
    at = min(timezone.now(), invoice.period_end - timedelta(microseconds=1))
    preview = invoice_preview(tenant_id=invoice.tenant_id, at=at)
    if preview is None or preview.period.start != invoice.period_start:
        return None
    before = {_line_id(line.key, line.dimensions): line for line in invoice.lines.all()}
    now = {_line_id(line.key, dict(line.dimensions)): line for line in preview.priced.lines}
    changes = []
    for line_id in [*before, *(i for i in now if i not in before)]:
        old, new = before.get(line_id), now.get(line_id)
        change = LineChange(
            description=(new or old).description,  # type: ignore[union-attr]
            quantity_before=old.quantity if old else None,
            quantity_now=new.quantity if new else None,
            amount_before=old.amount if old else ZERO,
            amount_now=new.amount if new else ZERO,
        )
        moved = change.delta or change.quantity_before != change.quantity_now
        if old is None or new is None or moved:
            changes.append(change)
    return DraftChanges(changes, invoice.subtotal_amount, preview.priced.subtotal)
