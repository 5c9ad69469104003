"""The demo business's guardrails: budgets on its cost centers, its priciest feature and the
partner of the planted incident, so that ``make run`` shows budgets at every stage (under,
past 70 and 90 %, over 110 % and throttled), with their alerts, forecasts and findings.
Through the alerts services, like any operator; idempotent (budgets are found by name)."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_UP, Decimal

from django.db.models import Count

from apps.alerts.models import Budget, ForecastSnapshot
from apps.alerts.services.budgets.manage import budget_create
from apps.alerts.services.forecasts import forecast_actuals_fill, forecasts_snapshot
from apps.core.periods import month_add
from apps.costs.selectors import CostPeriod, cost_totals
from apps.demo.workflows import INCIDENT
from apps.metering.models import Event
from apps.tenants.models import CostCenter, Tenant

FINANCE_EMAIL = "finance@percall-demo.example"
# Custom budgets cover the demo's traffic so far: the 28 days up to today, and to the end of
# tomorrow so that today is inside the period in every tenant's timezone (a tenant budget's
# days are the tenant's own).
PILOT_DAYS = 28
# The incident partner's budget is sized a little below what it spent in that time, and the
# feature's well above, so the demo shows one budget past 110 % (throttled) and one between
# thresholds. Real budgets come from plans, not from what was spent.
_INCIDENT_SHARE = Decimal("0.85")  # spend / budget ≈ 118 %
_FEATURE_SHARE = Decimal("1.25")  # spend / budget ≈ 80 %


@dataclass(frozen=True)
class DemoGuardrails:
    budgets_created: int
    incident_tenant: str | None


def _sized(spent: Decimal, share: Decimal) -> Decimal | None:
    """A budget of ``spent x share`` in cents (rounded up); None with no spend."""
    if spent <= 0:
        return None
    return (spent * share).quantize(Decimal("0.01"), rounding=ROUND_UP)


def _spent(period: CostPeriod, group: str, value: str) -> Decimal:
    totals = cost_totals(period=period, group_by=(group,), sums=("cost",))
    return Decimal(totals.get((value,), {}).get("cost", 0))


def _incident_tenant(today: date) -> Tenant | None:
    """The partner the demo's incident hit hardest: the one with the most calls carrying the
    incident's release tag (a read of two days of raw events, demo only)."""
    since = datetime.combine(today - timedelta(days=2), time(), tzinfo=UTC)
    tagged = Event.objects.filter(timestamp__gte=since, properties__deployment=INCIDENT.deployment)
    busiest = tagged.values("tenant_id").annotate(n=Count("*")).order_by("-n", "tenant_id")
    tenant_id = busiest.values_list("tenant_id", flat=True).first()
    return Tenant.objects.filter(id=tenant_id).first() if tenant_id else None


def _pilot_create(
    name: str, amount: Decimal, window: CostPeriod, *, scope: str, tenant: Tenant | None = None
) -> None:
    """A cost budget over the pilot window; a tenant's throttles past 110 %."""
    budget_create(
        name=name,
        scope=scope,
        tenant=tenant,
        scope_value=INCIDENT.feature if scope == Budget.Scope.FEATURE else "",
        measure=Budget.Measure.COST,
        amount=amount,
        currency="USD",
        period=Budget.Period.CUSTOM,
        period_start=window.start,
        period_end=window.end,
        action=Budget.Action.THROTTLE if tenant else Budget.Action.NOTIFY,
        notify_emails=[FINANCE_EMAIL],
    )


def demo_guardrails_ensure(*, today: date) -> DemoGuardrails:
    """The demo's budgets: each cost center's monthly cost budget (its chargeback budget),
    the incident feature's cost over the pilot window, and a throttling budget on the
    incident partner's cost over the same window."""
    existing = set(Budget.objects.values_list("name", flat=True))
    created = 0
    for center in CostCenter.objects.filter(monthly_budget_amount__isnull=False).order_by("code"):
        name = f"{center.name}: monthly cost"
        if name not in existing and center.monthly_budget_amount is not None:
            budget_create(
                name=name,
                scope=Budget.Scope.COST_CENTER,
                cost_center=center,
                measure=Budget.Measure.COST,
                amount=center.monthly_budget_amount,
                currency="USD",
                notify_emails=[FINANCE_EMAIL],
            )
            created += 1
    window = CostPeriod(today - timedelta(days=PILOT_DAYS), today + timedelta(days=2))
    feature = f"{INCIDENT.feature} feature: {PILOT_DAYS}-day pilot cost"
    amount = _sized(_spent(window, "feature", INCIDENT.feature), _FEATURE_SHARE)
    if feature not in existing and amount is not None:
        _pilot_create(feature, amount, window, scope=Budget.Scope.FEATURE)
        created += 1
    tenant = _incident_tenant(today)
    if tenant is not None:
        name = f"{tenant.name}: {PILOT_DAYS}-day pilot cost"
        amount = _sized(_spent(window, "tenant", str(tenant.id)), _INCIDENT_SHARE)
        if name not in existing and amount is not None:
            _pilot_create(name, amount, window, scope=Budget.Scope.TENANT, tenant=tenant)
            created += 1
    return DemoGuardrails(created, tenant.external_id if tenant else None)


def demo_forecast_backtest(*, month: date) -> int:
    """Forecast snapshots as the daily task would have made them each week of ``month`` (from
    the days before each), so the demo reports forecast accuracy against that month's actuals
    at once instead of a month from now. Returns the weeks snapshotted; idempotent."""
    made = 0
    for day in range(2, 32, 7):
        try:
            made_on = month.replace(day=day)
        except ValueError:  # past the month's last day
            break
        if not ForecastSnapshot.objects.filter(made_on=made_on).exists():
            forecasts_snapshot(made_on=made_on)
            made += 1
    # The daily task records a month's actuals a day after it closes, for late events; the
    # demo's traffic is all in, so its backtest is scored at once, even on the 1st.
    forecast_actuals_fill(as_of=month_add(month, 1) + timedelta(days=2))
    return made
