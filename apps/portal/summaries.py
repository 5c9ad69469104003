"""Figures the home page shows, put together from lower apps' selectors: the credit balance
across grants and where each budget stands against its thresholds."""

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from uuid import UUID

from apps.alerts.models import Budget, BudgetPeriod
from apps.alerts.selectors import (
    GrantStatus,
    budget_list,
    budget_periods_latest,
    credit_status,
    depletion_date,
)

_PERCENT = Decimal("0.01")


@dataclass(frozen=True)
class CreditSummary:
    """All usable grants together: balance, % of their amounts consumed, and the day the
    balance runs out at the last 30 days' pace (None: nothing spent lately)."""

    currency: str
    balance: Decimal
    consumed_percent: Decimal
    depletion_on: date | None
    grants: list[GrantStatus]


def credit_summary(*, tenant_id: UUID, currency: str, today: date) -> CreditSummary | None:
    """None when the tenant has no usable grant."""
    grants = [s for s in credit_status(tenant_id=tenant_id) if s.grant.currency == currency]
    if not grants:
        return None
    amount = sum((s.grant.amount for s in grants), Decimal(0))
    balance = sum((s.remaining for s in grants), Decimal(0))
    burn = sum((s.burn_per_day for s in grants), Decimal(0))
    percent = ((amount - balance) * 100 / amount).quantize(_PERCENT, rounding=ROUND_HALF_UP)
    return CreditSummary(
        currency=currency,
        balance=balance,
        consumed_percent=percent,
        depletion_on=depletion_date(remaining=balance, burn_per_day=burn, today=today),
        grants=grants,
    )


@dataclass(frozen=True)
class BudgetStatus:
    """A budget and its latest evaluated period; ``level`` is the highest threshold crossed
    (0 for none) and names the badge: ok below the first, warn, then over at 100 % and up."""

    budget: Budget
    period: BudgetPeriod | None

    @property
    def level(self) -> int:
        return max(self.period.crossed, default=0) if self.period else 0

    @property
    def badge(self) -> str:
        if self.period is None or not self.period.crossed:
            return "ok"
        return "over" if self.level >= 100 else "warn"


def budget_statuses(*, tenant_id: UUID) -> list[BudgetStatus]:
    """The tenant's active budgets with where each stands, in two queries."""
    budgets = list(budget_list(scope_tenant_id=tenant_id, active=True))
    latest = budget_periods_latest(budget_ids=[b.id for b in budgets])
    return [BudgetStatus(b, latest.get(b.id)) for b in budgets]
