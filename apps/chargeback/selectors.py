"""Read path for chargeback: statements (operator-only: they are internal documents)."""

from datetime import date
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import Prefetch, QuerySet

from apps.chargeback.errors import StatementNotFound
from apps.chargeback.models import Statement, StatementLine


def statement_list(*, period_start: date | None = None) -> QuerySet[Statement]:
    rows = Statement.objects.select_related("cost_center", "corrects").order_by(
        "-period_start", "cost_center__code", "drafted_at"
    )
    return rows if period_start is None else rows.filter(period_start=period_start)


def statement_get(*, statement_id: UUID | str) -> Statement:
    lines = StatementLine.objects.select_related("pool").order_by("position")
    try:
        return (
            Statement.objects.select_related("cost_center", "corrects")
            .prefetch_related(Prefetch("lines", queryset=lines))
            .get(id=statement_id)
        )
    except (Statement.DoesNotExist, ValueError, ValidationError) as exc:
        raise StatementNotFound(f"statement {statement_id} not found", field="id") from exc


def statements_effective(*, period_start: date) -> list[Statement]:
    """The statement that stands for each cost center in a month: its latest issued one (a
    correction supersedes what it corrects), else its draft."""
    chosen: dict[object, Statement] = {}
    rows = statement_list(period_start=period_start).prefetch_related(
        Prefetch(
            "lines", queryset=StatementLine.objects.select_related("pool").order_by("position")
        )
    )
    for statement in rows.order_by("drafted_at"):
        current = chosen.get(statement.cost_center_id)
        if statement.status == Statement.Status.ISSUED:
            # Numbers grow within a month (gapless, zero-padded): the highest was issued last.
            if (
                current is None
                or current.status == Statement.Status.DRAFT
                or (statement.number or "") > (current.number or "")
            ):
                chosen[statement.cost_center_id] = statement
        elif current is None:
            chosen[statement.cost_center_id] = statement
    return sorted(chosen.values(), key=lambda s: s.cost_center.code if s.cost_center else "")
