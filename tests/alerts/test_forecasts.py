"""Forecast snapshots of November 2026 made on 15 November (14 whole days observed, 16 to
go), from cost rollups written directly, every expected figure worked out by hand.

acme: 10.00 a day since 4 October, feature chat (mapped to cost center ml).
globex: a weekly pattern, Monday 1.00 ... Sunday 7.00, since 4 October, feature search
(mapped to no cost center: Unallocated, key '').
1 November 2026 is a Sunday, so 1-14 November is two whole weeks.
"""

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from apps.alerts.models import ForecastSnapshot
from apps.alerts.selectors import forecast_accuracy
from apps.alerts.services.forecasts import (
    forecast_actuals_fill,
    forecasts_snapshot,
    insights_demo_run,
)
from apps.billing.services.runs import billing_run
from apps.billing.services.subscriptions import subscription_create
from apps.catalog.selectors import plan_get
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.chargeback.models import CostCenterRule
from apps.costs.models import CostRollup
from apps.costs.services.rollup import cost_rollup_pending_run
from apps.metering.services.rollup import rollup_pending_run
from apps.tenants.services.tenants import cost_center_create
from tests.billing.billing_setup import CATALOG
from tests.metering.ingesting import ingest_events

NOW = datetime(2026, 11, 15, 0, 30, tzinfo=UTC)
MADE_ON = date(2026, 11, 15)
FIRST = date(2026, 10, 4)


def _days(start: date, end: date):
    day = start
    while day < end:
        yield day
        day += timedelta(days=1)


def costs(tenant, feature: str, value, *, start: date = FIRST, end: date = MADE_ON) -> None:
    CostRollup.objects.bulk_create(
        CostRollup(
            tenant=tenant,
            day=day,
            event_type="api.call",
            feature=feature,
            source=CostRollup.Source.PRICE_BOOK,
            events=4,
            cost=value(day),
        )
        for day in _days(start, end)
    )


@pytest.fixture
def world(make_tenant):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    ml = cost_center_create(code="ml", name="Machine learning")
    CostCenterRule.objects.create(field="feature", value="chat", cost_center=ml)
    costs(acme, "chat", lambda day: D("10.00"))
    costs(globex, "search", lambda day: D(day.weekday() + 1))
    return acme, globex


def snapshot(scope: str, key: str, measure: str = "cost") -> ForecastSnapshot:
    return ForecastSnapshot.objects.get(
        scope=scope, scope_key=key, measure=measure, made_on=MADE_ON
    )


def test_cost_forecasts_per_scope_by_hand(world, clock):
    forecasts_snapshot(made_on=MADE_ON)
    # acme: 14 days of 10.00 observed (140.00), 16 more -> 30 * 10.00 = 300.00
    acme = snapshot("tenant", "acme")
    assert (acme.actual_to_date, acme.forecast, acme.lower, acme.upper) == (
        D(140),
        D(300),
        D(300),
        D(300),
    )
    assert acme.method == "holt_winters"
    assert (acme.period_start, acme.period_end, acme.currency) == (
        date(2026, 11, 1),
        date(2026, 12, 1),
        "USD",
    )
    # globex: two weeks of 1..7 observed (2 * 28 = 56); to go 15 Nov (Sunday, 7), two whole
    # weeks (2 * 28) and 30 Nov (Monday, 1): 7 + 56 + 1 = 64; total 120
    globex = snapshot("tenant", "globex")
    assert (globex.actual_to_date, globex.forecast, globex.lower, globex.upper) == (
        D(56),
        D(120),
        D(120),
        D(120),
    )
    assert snapshot("feature", "chat").forecast == D(300)
    assert snapshot("feature", "search").forecast == D(120)
    assert snapshot("cost_center", "ml").forecast == D(300)
    assert snapshot("cost_center", "").forecast == D(120)  # Unallocated
    total = snapshot("total", "")
    assert (total.actual_to_date, total.forecast) == (D(196), D(420))  # 140 + 56, 300 + 120


def test_snapshotting_twice_a_day_keeps_one_row_per_scope(world, clock):
    forecasts_snapshot(made_on=MADE_ON)
    count = ForecastSnapshot.objects.count()
    forecasts_snapshot(made_on=MADE_ON)
    assert ForecastSnapshot.objects.count() == count == 7  # 2 tenants, 2 features, 2 centers, total


def test_a_noisy_series_gets_a_band_around_its_forecast(make_tenant, clock):
    noisy = make_tenant("noisy")
    wobble = [D(v) for v in ("9", "11", "10", "12", "8", "10", "11")]
    costs(noisy, "chat", lambda day: wobble[day.toordinal() % 7] + D(day.toordinal() % 3))
    forecasts_snapshot(made_on=MADE_ON)
    row = snapshot("tenant", "noisy")
    assert row.lower < row.forecast < row.upper
    assert row.lower >= row.actual_to_date


def test_closed_months_get_their_actuals(world, clock):
    forecasts_snapshot(made_on=MADE_ON)
    # the rest of November happens: acme 12.00 a day from the 15th, globex as before
    costs(world[0], "chat", lambda day: D("12.00"), start=MADE_ON, end=date(2026, 12, 1))
    costs(
        world[1], "search", lambda day: D(day.weekday() + 1), start=MADE_ON, end=date(2026, 12, 1)
    )
    assert forecast_actuals_fill(as_of=date(2026, 12, 1)) == 0  # a day's grace first
    assert forecast_actuals_fill(as_of=date(2026, 12, 2)) == 7
    # acme: 14 * 10.00 + 16 * 12.00 = 140 + 192 = 332; globex 120 as forecast
    assert snapshot("tenant", "acme").actual == D(332)
    assert snapshot("cost_center", "ml").actual == D(332)
    assert snapshot("tenant", "globex").actual == D(120)
    assert snapshot("total", "").actual == D(452)
    # MAPE per cost center: ml |300 - 332| / 332 = 9.638..% -> 9.64; Unallocated 0 %
    accuracy = forecast_accuracy(period_start=date(2026, 11, 1))
    centers = {c["cost_center"]: c for c in accuracy["cost_centers"]}
    assert centers["ml"]["mape_pct"] == D("9.64")
    assert centers[""]["mape_pct"] == D("0.00")
    # overall: (0.096385... + 0) / 2 = 4.819..% -> 4.82
    assert accuracy["overall"] == {"snapshots": 2, "excluded_zero_actual": 0, "mape_pct": D("4.82")}


def _snap(key: str, forecast: str, actual: str, made_on: date) -> ForecastSnapshot:
    return ForecastSnapshot.objects.create(
        scope="cost_center",
        scope_key=key,
        measure="cost",
        currency="USD",
        period_start=date(2026, 10, 1),
        period_end=date(2026, 11, 1),
        made_on=made_on,
        actual_to_date=D(0),
        forecast=D(forecast),
        lower=D(forecast),
        upper=D(forecast),
        method="holt_winters",
        actual=D(actual),
    )


def test_mape_by_hand(db):
    # ml: |90 - 100| / 100 = 10 %, |120 - 100| / 100 = 20 % -> 15.00
    _snap("ml", "90", "100", date(2026, 10, 5))
    _snap("ml", "120", "100", date(2026, 10, 6))
    # ops: |50 - 40| / 40 = 25 %; an actual of 0 is left out (and counted)
    _snap("ops", "50", "40", date(2026, 10, 5))
    _snap("idle", "10", "0", date(2026, 10, 5))
    accuracy = forecast_accuracy(period_start=date(2026, 10, 1))
    centers = {c["cost_center"]: c for c in accuracy["cost_centers"]}
    assert centers["ml"]["mape_pct"] == D("15.00")
    assert centers["ops"]["mape_pct"] == D("25.00")
    assert centers["idle"] == {
        "cost_center": "idle",
        "snapshots": 0,
        "excluded_zero_actual": 1,
        "mape_pct": None,
    }
    # overall (10 + 20 + 25) / 3 = 18.333.. -> 18.33
    assert accuracy["overall"] == {
        "snapshots": 3,
        "excluded_zero_actual": 1,
        "mape_pct": D("18.33"),
    }


def _payer_calls(start: date, end: date) -> None:
    """Two api.call events a day of tenant payer, rolled up and costed."""
    events = [
        {
            "id": f"rev-{day.isoformat()}-{n}",
            "tenant": "payer",
            "type": "api.call",
            "timestamp": f"{day.isoformat()}T{10 + n}:00:00Z",
        }
        for day in _days(start, end)
        for n in range(2)
    ]
    ingest_events(*events)
    rollup_pending_run()
    cost_rollup_pending_run()


@pytest.fixture
def payer(make_tenant):
    """A tenant on "calls" (1.00 a call, no base fee) since October, calling twice a day in
    November up to MADE_ON."""
    catalog_apply(doc=catalog_parse(content=json.dumps(CATALOG)))
    tenant = make_tenant("payer")
    subscription_create(
        tenant=tenant, plan=plan_get(code="calls"), start=datetime(2026, 10, 1, tzinfo=UTC)
    )
    _payer_calls(date(2026, 11, 1), MADE_ON)
    return tenant


def test_revenue_is_forecast_from_usage_priced_by_the_card(payer, clock):
    forecasts_snapshot(made_on=MADE_ON)
    revenue = snapshot("tenant", "payer", "revenue")
    # billed so far 28 calls * 1.00 = 28.00; calls forecast 30 * 2 = 60, so the usage is
    # scaled by 60 / 28 and priced: 60 * 1.00 = 60.00
    assert (revenue.actual_to_date, revenue.forecast, revenue.currency) == (D(28), D(60), "USD")
    assert (revenue.lower, revenue.upper, revenue.method) == (D(60), D(60), "holt_winters")
    total = snapshot("total", "", "revenue")
    assert (total.forecast, total.currency) == (D(60), "USD")


def test_revenue_actual_is_the_invoiced_month(payer, clock):
    forecasts_snapshot(made_on=MADE_ON)
    # the rest of November: 16 more days of 2 calls; the invoice is final after the grace hour
    clock.move_to(datetime(2026, 12, 2, 1, tzinfo=UTC))
    _payer_calls(MADE_ON, date(2026, 12, 1))
    billing_run(as_of=datetime(2026, 12, 1, 2, tzinfo=UTC))
    forecast_actuals_fill(as_of=date(2026, 12, 2))
    # 60 calls * 1.00 = 60.00, as forecast
    assert snapshot("tenant", "payer", "revenue").actual == D(60)
    assert snapshot("total", "", "revenue").actual == D(60)


def test_the_demo_entry_point_snapshots_and_detects(world, clock):
    # no hourly usage in these cost-only fixtures, so nothing to judge; 7 cost snapshots
    assert insights_demo_run(as_of=NOW) == {"anomalies": 0, "forecast_snapshots": 7}
    assert ForecastSnapshot.objects.filter(made_on=MADE_ON).count() == 7
