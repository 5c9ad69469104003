"""Which period of a budget contains a moment. Periods are dates, ``[start, end)``: calendar
months in UTC (a tenant budget: in the tenant's timezone, like its invoices), or the one
custom period."""

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from apps.alerts.models import Budget
from apps.core.periods import local_midnight, month_add

# A period is still evaluated this long after it ends: late events are rolled up and costed,
# and its invoice is finalized (after billing's grace), in the days after it closes.
ENDED_GRACE = timedelta(days=2)


def budget_zone(budget: Budget) -> tzinfo:
    """The zone a budget's period dates are in."""
    if budget.scope == Budget.Scope.TENANT and budget.tenant is not None:
        return ZoneInfo(budget.tenant.timezone)
    return UTC


def budget_period_at(budget: Budget, at: datetime) -> tuple[date, date] | None:
    """The period containing ``at``, or None (a custom period not begun or over)."""
    today = at.astimezone(budget_zone(budget)).date()
    if budget.period == Budget.Period.MONTHLY:
        start = today.replace(day=1)
        return start, month_add(start, 1)
    first, last = budget.period_start, budget.period_end
    if first is None or last is None or not first <= today < last:
        return None
    return first, last


def day_start(day: date, zone: tzinfo) -> datetime:
    """The instant (UTC) ``day`` begins in ``zone``."""
    if isinstance(zone, ZoneInfo):
        return local_midnight(day, zone)
    return datetime.combine(day, time(), tzinfo=UTC)


def _period_before(budget: Budget, at: datetime) -> tuple[date, date] | None:
    """The period that ended within ``ENDED_GRACE`` before ``at``, if any."""
    zone = budget_zone(budget)
    today = at.astimezone(zone).date()
    if budget.period == Budget.Period.MONTHLY:
        end = today.replace(day=1)
        start = month_add(end, -1)
    elif budget.period_start is not None and budget.period_end is not None:
        start, end = budget.period_start, budget.period_end
    else:
        return None
    if not end <= today < end + ENDED_GRACE:
        return None
    if budget.created_at is not None and budget.created_at >= day_start(end, zone):
        return None  # a budget created after the period ended never had it
    return start, end


def budget_periods_due(budget: Budget, at: datetime) -> list[tuple[date, date]]:
    """The periods to evaluate at ``at``: the one just ended (if within its grace), then the
    current one."""
    due = (_period_before(budget, at), budget_period_at(budget, at))
    return [period for period in due if period is not None]
