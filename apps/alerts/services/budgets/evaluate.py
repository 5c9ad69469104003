"""Evaluating every active budget for its current period (Celery, every few minutes).

All budgets are measured first, set-based (``measures``); then, in one transaction per chunk,
each budget's ``BudgetPeriod`` row is created if new and locked, and compared with what the
last evaluation recorded. A threshold newly reached fires a ``threshold_crossed`` alert; one
the figure has fallen back below (a credit note, a re-costing) fires ``resolved``. Each fires
at most once per budget, period and threshold: the unique constraint on ``BudgetAlert`` makes
it so however many evaluations run at once, and only the evaluation that inserted the alert
publishes its event. A row already recorded by a later evaluation is left alone, so a slow
run never overwrites a newer state.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.alerts.forecasting import period_forecast
from apps.alerts.models import Budget, BudgetAlert, BudgetPeriod
from apps.alerts.services.budgets.measures import Measured, Target, TargetKey, measures_all
from apps.alerts.services.budgets.periods import budget_periods_due
from apps.alerts.services.credit_alerts import credit_alerts_run
from apps.alerts.services.limits import limits_refresh_on_commit
from apps.core.outbox import outbox_publish

CHUNK = 500
# Marks a period row created by this evaluation (nothing recorded before it).
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)
_FIGURE = Decimal("1e-12")
_PERCENT = Decimal("0.01")
_PERCENT_MAX = Decimal("9999999999.99")  # the column's 12 digits
_NAMED_SCOPES = (Budget.Scope.FEATURE, Budget.Scope.WORKFLOW, Budget.Scope.ENDPOINT)


@dataclass
class EvaluationReport:
    budgets: int = 0
    crossed: int = 0
    resolved: int = 0
    credit_alerts: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Forecast:
    total: Decimal
    lower: Decimal
    upper: Decimal


def _days(start: date, count: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(count)]


def forecast_of(measured: Measured, target: Target, today: date) -> Forecast:
    """The period's projected total: whole days so far through ``period_forecast``, never
    below what has already happened (today's part-day included)."""
    total = measured.total
    days_total = (target.end - target.start).days
    if today >= target.end:
        return Forecast(total, total, total)
    elapsed = (today - target.start).days
    history: list[Decimal] = []
    if measured.daily_known:
        daily = [measured.daily.get(d, Decimal(0)) for d in _days(target.start, elapsed)]
        if measured.history:  # from the first day with a figure up to the period's start
            first = min(measured.history)
            history = [
                measured.history.get(d, Decimal(0))
                for d in _days(first, (target.start - first).days)
            ]
    else:  # invoices: what is billed so far, spread over the days it took (a run rate)
        daily = [total / (elapsed + 1)] * (elapsed + 1)
    projected = period_forecast(daily, days_total=days_total, history=history)
    return Forecast(
        max(projected.total, total), max(projected.lower, total), max(projected.upper, total)
    )


def _limit_threshold(budget: Budget) -> int | None:
    """The threshold past which the scope is over limit: the highest, when it is >= 100."""
    top = max(budget.thresholds)
    return top if top >= 100 and budget.action != Budget.Action.NOTIFY else None


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def budget_event_data(budget: Budget, row: BudgetPeriod, threshold: int) -> dict[str, Any]:
    """The payload of ``budget.threshold_crossed`` and ``budget.resolved``."""
    return {
        "budget": {
            "id": str(budget.id),
            "name": budget.name,
            "scope": budget.scope,
            "scope_value": budget.scope_value,
            "tenant": budget.tenant.external_id if budget.tenant else None,
            "cost_center": budget.cost_center.code if budget.cost_center else None,
            "measure": budget.measure,
            "meter": budget.meter.code if budget.meter else None,
            "amount": str(budget.amount),
            "currency": budget.currency or None,
            "action": budget.action,
        },
        "period": {"start": row.period_start.isoformat(), "end": row.period_end.isoformat()},
        "threshold": threshold,
        "measured": str(row.measured),
        "percent": str(row.percent),
        "forecast": _text(row.forecast),
        "forecast_lower": _text(row.forecast_lower),
        "forecast_upper": _text(row.forecast_upper),
        "over_limit": row.over_limit,
        "drivers": row.drivers,
    }


def _fire(budget: Budget, row: BudgetPeriod, threshold: int, kind: str, at: datetime) -> bool:
    """Insert the alert and publish its event; False when it had already fired."""
    try:
        with transaction.atomic():
            BudgetAlert.objects.create(
                budget=budget,
                period_start=row.period_start,
                period_end=row.period_end,
                threshold=threshold,
                kind=kind,
                measured=row.measured,
                percent=row.percent,
                forecast=row.forecast,
                drivers=row.drivers,
                fired_at=at,
            )
    except IntegrityError:
        return False
    outbox_publish(
        topic=f"budget.{kind}",
        tenant_id=budget.tenant_id,
        data=budget_event_data(budget, row, threshold),
    )
    return True


def _state_set(row: BudgetPeriod, target: Target, measured: Measured, as_of: datetime) -> None:
    budget = target.budget
    total = measured.total.quantize(_FIGURE)
    forecast = forecast_of(measured, target, as_of.astimezone(target.zone).date())
    percent = (total * 100 / budget.amount).quantize(_PERCENT, rounding=ROUND_HALF_UP)
    limit = _limit_threshold(budget)
    row.measured = total
    row.percent = min(percent, _PERCENT_MAX)
    row.forecast = forecast.total.quantize(_FIGURE)
    row.forecast_lower = forecast.lower.quantize(_FIGURE)
    row.forecast_upper = forecast.upper.quantize(_FIGURE)
    # Exact comparisons (figure x 100 against threshold x amount), not the rounded percent.
    row.crossed = [t for t in budget.thresholds if total * 100 >= t * budget.amount]
    row.over_limit = limit is not None and total * 100 >= limit * budget.amount
    row.drivers = measured.drivers()
    row.evaluated_at = as_of
    row.updated_at = timezone.now()  # bulk_update leaves auto_now alone


_UPDATED = (
    "measured", "percent", "forecast", "forecast_lower", "forecast_upper",
    "crossed", "over_limit", "drivers", "evaluated_at", "updated_at",
)  # fmt: skip


def _locked_rows(chunk: Sequence[Target]) -> dict[tuple[UUID, date], BudgetPeriod]:
    BudgetPeriod.objects.bulk_create(
        [
            BudgetPeriod(
                budget_id=t.budget.id,
                period_start=t.start,
                period_end=t.end,
                measured=0,
                percent=0,
                evaluated_at=_NEVER,
            )
            for t in chunk
        ],
        ignore_conflicts=True,
    )
    rows = BudgetPeriod.objects.select_for_update().filter(
        budget_id__in=[t.budget.id for t in chunk], period_start__in={t.start for t in chunk}
    )
    return {(r.budget_id, r.period_start): r for r in rows.order_by("id")}


def _record(
    chunk: Sequence[Target],
    figures: dict[TargetKey, Measured],
    as_of: datetime,
    report: EvaluationReport,
) -> None:
    with transaction.atomic(durable=True):
        rows = _locked_rows(chunk)
        updated, tenants, everyone = [], set(), False
        for target in chunk:
            budget, row = target.budget, rows[(target.budget.id, target.start)]
            if row.evaluated_at > as_of:  # a later evaluation got here first
                continue
            # Thresholds a change removed from the budget neither resolve nor fire again.
            before = set(row.crossed) & set(budget.thresholds)
            fresh, was_over = row.evaluated_at == _NEVER, row.over_limit
            _state_set(row, target, figures[target.key], as_of)
            now_crossed = set(row.crossed)
            for threshold in sorted(now_crossed - before):
                report.crossed += _fire(budget, row, threshold, BudgetAlert.Kind.CROSSED, as_of)
            for threshold in sorted(before - now_crossed, reverse=True):
                report.resolved += _fire(budget, row, threshold, BudgetAlert.Kind.RESOLVED, as_of)
            if fresh or was_over != row.over_limit:
                if budget.tenant_id is not None:
                    tenants.add(budget.tenant_id)
                elif budget.scope in _NAMED_SCOPES:
                    everyone = True
            updated.append(row)
        BudgetPeriod.objects.bulk_update(updated, fields=list(_UPDATED))
        limits_refresh_on_commit(tenant_ids=tenants, everyone=everyone)


def budgets_evaluate(
    *, as_of: datetime | None = None, budget_ids: Sequence[UUID | str] | None = None
) -> EvaluationReport:
    """Evaluate every active budget (or ``budget_ids``) for the period containing ``as_of``
    (now), and the period just ended for two days after it ends (late usage, the invoice
    finalized after the period); then the credit grants' low-balance alerts. Safe to run
    twice or concurrently."""
    as_of = as_of or timezone.now()
    budgets = Budget.objects.filter(active=True).select_related("tenant", "meter", "cost_center")
    if budget_ids is not None:
        budgets = budgets.filter(id__in=list(budget_ids))
    targets = [
        Target(budget, start, end)
        for budget in budgets.order_by("id")
        for start, end in budget_periods_due(budget, as_of)
    ]
    figures = measures_all(targets, as_of=as_of)
    targets = [t for t in targets if t.key in figures]  # unmeasurable ones keep state
    report = EvaluationReport(budgets=len(targets))
    for index in range(0, len(targets), CHUNK):
        _record(targets[index : index + CHUNK], figures, as_of, report)
    if budget_ids is None:
        report.credit_alerts = credit_alerts_run(as_of=as_of)
    return report
