"""Forecast snapshots: cost and billed revenue to the end of the month, stored daily so that
forecast accuracy can be measured once the month has closed.

Cost (operator currency, the cost rollups) is forecast per tenant, per cost center (mapped
as chargeback maps it, direct cost only), per feature and in total, each from its own daily
series by ``apps.alerts.forecasting.period_forecast``, with the 28 days before the month as
history to fit on.

Billed revenue is monthly invoices, not a daily series, so it is forecast from usage: a
tenant's calls are forecast to month end like cost, and the tenant's open billing period is
priced again by billing's own pricing (``period_bill``/``charges_usage``/``bill_price``) with
the additive usage (count and sum meters) scaled by forecast calls over calls so far; unique
counts and latest values are left as they are. The revenue forecast is the running bill so
far (invoices, running drafts, preview: ``revenue_lines``) plus what the scaled bill adds,
so tiers, packages, free units and minimum commitments are priced as the card prices them.
"""

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction

from apps.alerts.forecasting import PeriodForecast, period_forecast
from apps.alerts.models import ForecastSnapshot
from apps.alerts.services.anomalies import anomalies_detect
from apps.billing.selectors import invoice_preview, revenue_lines
from apps.billing.services.pricing import bill_price
from apps.billing.services.usage import ChargeUsage, charges_usage
from apps.chargeback.services.mapping import CostCenterMap
from apps.core.periods import month_add
from apps.costs.selectors import CostPeriod, cost_daily, cost_rows_for_chargeback
from apps.costs.services.rollup import PriceContext
from apps.metering.models import Meter
from apps.tenants.models import CostCenter, Tenant

ZERO = Decimal(0)
HISTORY_DAYS = 28  # days before the month the models may fit on (4 weekly seasons)
PLACES = Decimal("1e-12")
_SCALED = (Meter.Aggregation.COUNT, Meter.Aggregation.SUM)  # usage that grows with calls
Scope = ForecastSnapshot.Scope
Measure = ForecastSnapshot.Measure
Daily = dict[date, Decimal]
SeriesKey = tuple[str, str]  # scope, scope key


def month_of(day: date) -> CostPeriod:
    """The UTC month containing ``day``."""
    start = day.replace(day=1)
    return CostPeriod(start, month_add(start, 1))


def _days(start: date, end: date) -> list[date]:
    return [date.fromordinal(o) for o in range(start.toordinal(), end.toordinal())]


def series_forecast(days: Daily, *, period: CostPeriod, made_on: date) -> PeriodForecast:
    """The forecast of one daily series: the month's whole days before ``made_on`` observed,
    the 28 days before the month as history (from the series' first non-zero day)."""
    history = [
        days.get(d, ZERO) for d in _days(period.start - timedelta(HISTORY_DAYS), period.start)
    ]
    while history and history[0] == 0:
        history.pop(0)
    observed = [days.get(d, ZERO) for d in _days(period.start, made_on)]
    return period_forecast(observed, days_total=len(period.days()), history=history)


def _cost_series(window: CostPeriod) -> dict[SeriesKey, Daily]:
    """Daily cost per tenant, feature, cost center and in total over ``window``."""
    names = dict(Tenant.objects.values_list("id", "external_id"))
    out: dict[SeriesKey, Daily] = defaultdict(dict)
    for group, scope in (
        (("tenant",), Scope.TENANT),
        (("feature",), Scope.FEATURE),
        ((), Scope.TOTAL),
    ):
        for key, days in cost_daily(period=window, group_by=group).items():
            label = str(names.get(UUID(key[0]), key[0])) if scope == Scope.TENANT else "".join(key)
            out[(scope, label)] = {d: cost for d, (_, cost) in days.items()}
    centers = CostCenterMap.load()
    codes = dict(CostCenter.objects.values_list("id", "code"))
    for row in cost_rows_for_chargeback(period=window):
        center = centers.cost_center_of(row)
        series = out[(Scope.COST_CENTER, codes[center] if center is not None else "")]
        series[row["day"]] = series.get(row["day"], ZERO) + row["cost"]
    return out


def _calls_series(window: CostPeriod) -> dict[UUID, Daily]:
    return {
        UUID(key[0]): {d: Decimal(calls) for d, (calls, _) in days.items()}
        for key, days in cost_daily(period=window, group_by=("tenant",)).items()
    }


def _snapshot(
    key: SeriesKey, measure: str, currency: str, period: CostPeriod, made_on: date, **figures: Any
) -> ForecastSnapshot:
    return ForecastSnapshot(
        scope=key[0],
        scope_key=key[1],
        measure=measure,
        currency=currency,
        period_start=period.start,
        period_end=period.end,
        made_on=made_on,
        **{k: v.quantize(PLACES) if isinstance(v, Decimal) else v for k, v in figures.items()},
    )


def _from_forecast(result: PeriodForecast) -> dict[str, Any]:
    return {
        "actual_to_date": result.actual_to_date,
        "forecast": result.total,
        "lower": result.lower,
        "upper": result.upper,
        "method": result.method,
    }


def revenue_scaled(*, tenant_id: UUID, at: datetime, factors: list[Decimal]) -> list[Decimal]:
    """What the tenant's open period's bill (before credits and tax) would add if its additive
    usage were scaled by each factor, priced by billing's pricing; zeros without one."""
    preview = invoice_preview(tenant_id=tenant_id, at=at)
    if preview is None:
        return [ZERO for _ in factors]
    bill = preview.bill
    usages = charges_usage(windows={bill.window: bill.charges})[bill.window]

    def priced(factor: Decimal) -> Decimal:
        scaled = [
            ChargeUsage(
                u.charge,
                u.quantity * factor if u.charge.meter.aggregation in _SCALED else u.quantity,
            )
            for u in usages
        ]
        return sum((line.amount for line in bill_price(bill, scaled).lines), ZERO)

    base = priced(Decimal(1))
    return [max(priced(f) - base, ZERO) for f in factors]


def _billed(
    period: CostPeriod, at: datetime, prices: PriceContext
) -> dict[UUID, tuple[str, Decimal]]:
    """Each tenant's billed revenue of the period so far in the tenant's currency (a line in
    another, after a change of plan, converted through the operator currency that day)."""
    lines = revenue_lines(start=period.start_at(), end=period.end_at(), at=at)
    currency = dict(Tenant.objects.values_list("id", "currency"))
    day = at.date()
    out: dict[UUID, tuple[str, Decimal]] = {}
    for line in lines:
        target = currency.get(line.tenant_id, line.currency)
        amount = line.amount
        if line.currency != target:
            rate, back = prices.fx(line.currency, day), prices.fx(target, day)
            if rate is None or not back:
                continue  # no rate: left out rather than guessed
            amount = amount * rate / back
        _, so_far = out.get(line.tenant_id, (target, ZERO))
        out[line.tenant_id] = (target, so_far + amount)
    return out


def _revenue_snapshots(
    period: CostPeriod, made_on: date, window: CostPeriod
) -> list[ForecastSnapshot]:
    at = datetime.combine(made_on, time(), tzinfo=UTC)
    prices, operator = PriceContext(), settings.PERCALL_OPERATOR_CURRENCY
    billed = _billed(period, at, prices)
    names = dict(Tenant.objects.values_list("id", "external_id"))
    calls = _calls_series(window)
    total = {"actual_to_date": ZERO, "forecast": ZERO, "lower": ZERO, "upper": ZERO}
    out = []
    for tenant_id, (currency, so_far) in sorted(billed.items(), key=lambda item: str(item[0])):
        usage = series_forecast(calls.get(tenant_id, {}), period=period, made_on=made_on)
        done = usage.actual_to_date
        factors = [
            v / done if done else Decimal(1) for v in (usage.total, usage.lower, usage.upper)
        ]
        mid, low, high = revenue_scaled(tenant_id=tenant_id, at=at, factors=factors)
        figures = {
            "actual_to_date": so_far,
            "forecast": so_far + mid,
            "lower": so_far + low,
            "upper": so_far + high,
        }
        key = (Scope.TENANT.value, str(names.get(tenant_id, tenant_id)))
        out.append(
            _snapshot(
                key, Measure.REVENUE, currency, period, made_on, method=usage.method, **figures
            )
        )
        rate = prices.fx(currency, made_on)
        if rate is not None:  # a currency without a rate is left out of the total
            for name, value in figures.items():
                total[name] += value * rate
    if out:
        out.append(
            _snapshot(
                (Scope.TOTAL, ""), Measure.REVENUE, operator, period, made_on, method="sum", **total
            )
        )
    return out


def forecasts_snapshot(*, made_on: date) -> list[ForecastSnapshot]:
    """Store today's forecasts of the month containing ``made_on`` (from whole days before it):
    cost per tenant, cost center, feature and in total; billed revenue per tenant and in total.
    Then record the actuals of closed months. Running twice on a day replaces that day's
    snapshots with the same figures. The forecasts are computed before the transaction that
    writes them, which stays short."""
    period = month_of(made_on)
    window = CostPeriod(period.start - timedelta(HISTORY_DAYS), made_on)
    operator = settings.PERCALL_OPERATOR_CURRENCY
    rows = [
        _snapshot(
            key,
            Measure.COST,
            operator,
            period,
            made_on,
            **_from_forecast(series_forecast(days, period=period, made_on=made_on)),
        )
        for key, days in sorted(_cost_series(window).items())
    ]
    rows += _revenue_snapshots(period, made_on, window)
    for row in rows:
        row.full_clean(validate_constraints=False)
    with transaction.atomic(durable=True):
        _snapshots_write(rows)
        forecast_actuals_fill(as_of=made_on)
    return rows


def _snapshots_write(rows: list[ForecastSnapshot]) -> None:
    ForecastSnapshot.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["scope", "scope_key", "measure", "period_start", "made_on"],
        update_fields=[
            "currency",
            "period_end",
            "actual_to_date",
            "forecast",
            "lower",
            "upper",
            "method",
            "updated_at",
        ],
    )


def _cost_actuals(period: CostPeriod) -> dict[SeriesKey, Decimal]:
    return {key: sum(days.values(), ZERO) for key, days in _cost_series(period).items()}


def _revenue_actuals(period: CostPeriod) -> dict[SeriesKey, Decimal]:
    """The month's billed revenue as invoiced (the period is over: no preview), per tenant in
    its currency and in total at the FX rate of its last day."""
    names = dict(Tenant.objects.values_list("id", "external_id"))
    prices = PriceContext()
    last_day = date.fromordinal(period.end.toordinal() - 1)
    out: dict[SeriesKey, Decimal] = defaultdict(Decimal)
    for tenant_id, (currency, amount) in _billed(period, period.end_at(), prices).items():
        out[(Scope.TENANT, str(names.get(tenant_id, tenant_id)))] = amount
        rate = prices.fx(currency, last_day)
        if rate is not None:
            out[(Scope.TOTAL, "")] += amount * rate
    return out


@transaction.atomic
def forecast_actuals_fill(*, as_of: date) -> int:
    """Record the actual of every snapshot of a month that closed more than a day before
    ``as_of`` (a day's grace for late events) and has none yet: what the month's cost and
    billed revenue came to (0 for a scope that had none). Returns the snapshots filled."""
    pending = (
        ForecastSnapshot.objects.filter(actual__isnull=True, period_end__lt=as_of)
        .values_list("period_start", "period_end")
        .distinct()
    )
    filled = 0
    actuals: dict[str, Callable[[CostPeriod], dict[SeriesKey, Decimal]]] = {
        Measure.COST: _cost_actuals,
        Measure.REVENUE: _revenue_actuals,
    }
    for start, end in sorted(set(pending)):
        period = CostPeriod(start, end)
        for measure, compute in actuals.items():
            values = compute(period)
            rows = ForecastSnapshot.objects.filter(
                period_start=start, measure=measure, actual__isnull=True
            )
            for scope, key in set(rows.values_list("scope", "scope_key")):
                filled += rows.filter(scope=scope, scope_key=key).update(
                    actual=values.get((scope, key), ZERO).quantize(PLACES)
                )
    return filled


def insights_demo_run(*, as_of: datetime) -> dict[str, int]:
    """What the demo calls once its traffic is rolled up and costed: judge the last 24
    complete hours for anomalies and snapshot today's forecasts (the scheduled tasks judge 3
    hours an hour and snapshot once a day). Returns how many of each it stored."""
    anomalies = anomalies_detect(as_of=as_of, hours=24)
    snapshots = forecasts_snapshot(made_on=as_of.astimezone(UTC).date())
    return {"anomalies": len(anomalies), "forecast_snapshots": len(snapshots)}
