"""Budget evaluation: thresholds cross once each at 70, 90 and 110 % as spend grows, fall back
to resolved, a new period starts fresh; the forecast and drivers come with each alert; and
every measure kind (cost by each scope, billed amount, usage units, credit consumption) is
measured from real ingested traffic, with the expected figures worked out by hand."""

import itertools
from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
import time_machine

from apps.alerts.models import Budget, BudgetAlert, BudgetPeriod
from apps.alerts.services.budgets.evaluate import budgets_evaluate
from apps.alerts.services.budgets.manage import budget_create
from apps.billing.models import Invoice
from apps.billing.services.credits import credit_grant_issue
from apps.billing.services.operations import credit_note_issue, invoice_void
from apps.billing.services.runs import billing_run
from apps.core.models import OutboxEvent
from apps.costs.models import CostRollup
from apps.costs.services.rollup import cost_rollup_pending_run
from apps.metering.selectors import meter_get
from apps.metering.services.rollup import rollup_pending_run
from apps.tenants.services.tenants import cost_center_create
from tests.billing.billing_setup import catalog_load, subscribe
from tests.metering.ingesting import ingest_events

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
_ids = itertools.count()


def spend(cost: str, *, tenant: str = "acme", day: int = 2, kind: str = "api.call", **dims):
    """One call costing ``cost`` USD (its own cost) on 2026-11-``day``, through ingestion and
    both rollups."""
    dims = {"feature": "chat", "endpoint": "/v1/chat", "workflow": "support", **dims}
    event = {
        "id": f"b{next(_ids)}",
        "tenant": tenant,
        "type": kind,
        "timestamp": f"2026-11-{day:02d}T10:00:00Z",
        "cost": cost,
        **dims,
    }
    ingest_events(event, backfill=True)
    rollup_pending_run()
    cost_rollup_pending_run()


def calls(count: int, *, tenant: str = "acme", day: int = 2, kind: str = "api.call", **extra):
    events = [
        {
            "id": f"c{next(_ids)}",
            "tenant": tenant,
            "type": kind,
            "timestamp": f"2026-11-{day:02d}T{9 + i % 10:02d}:00:00Z",
            **extra,
        }
        for i in range(count)
    ]
    ingest_events(*events, backfill=True)
    rollup_pending_run()
    cost_rollup_pending_run()


def cost_budget(tenant, amount="100", **kwargs):
    kwargs.setdefault("name", "acme spend")
    kwargs.setdefault("scope", Budget.Scope.TENANT)
    return budget_create(measure=Budget.Measure.COST, amount=D(amount), tenant=tenant, **kwargs)


def period_of(budget, start=date(2026, 11, 1)) -> BudgetPeriod:
    return BudgetPeriod.objects.get(budget=budget, period_start=start)


def alerts_of(budget) -> list[tuple[str, int]]:
    """(kind, threshold) of every alert, resolved ones first (the clock stands still)."""
    rows = BudgetAlert.objects.filter(budget=budget).order_by("kind", "threshold")
    return [(a.kind, a.threshold) for a in rows]


def events_of(topic: str) -> list[dict]:
    return [e.data for e in OutboxEvent.objects.filter(topic=topic).order_by("id")]


@pytest.fixture
def acme(make_tenant, clock):
    return make_tenant("acme")


def test_thresholds_cross_once_each_as_spend_grows(acme):
    budget = cost_budget(acme, action=Budget.Action.THROTTLE)

    spend("50.00")
    budgets_evaluate()
    assert period_of(budget).percent == D("50.00") and alerts_of(budget) == []

    spend("20.00")  # 70 of 100: exactly at the first threshold
    budgets_evaluate()
    assert alerts_of(budget) == [("threshold_crossed", 70)]
    budgets_evaluate()  # the same level again: nothing new
    assert alerts_of(budget) == [("threshold_crossed", 70)]

    spend("25.00", day=3)  # 95
    budgets_evaluate()
    assert alerts_of(budget)[-1] == ("threshold_crossed", 90)
    assert not period_of(budget).over_limit

    spend("15.00", day=4)  # 110: the limit threshold
    budgets_evaluate()
    budgets_evaluate()
    assert alerts_of(budget) == [
        ("threshold_crossed", 70),
        ("threshold_crossed", 90),
        ("threshold_crossed", 110),
    ]
    state = period_of(budget)
    assert (state.measured, state.percent, state.crossed) == (D("110"), D("110.00"), [70, 90, 110])
    assert state.over_limit
    published = events_of("budget.threshold_crossed")
    assert [e["threshold"] for e in published] == [70, 90, 110]
    assert published[-1]["measured"] == "110.000000000000"
    assert published[-1]["budget"]["tenant"] == "acme" and published[-1]["over_limit"] is True


def test_one_evaluation_jumping_past_several_thresholds_fires_each(acme):
    budget = cost_budget(acme)
    spend("95.00")
    budgets_evaluate()
    assert alerts_of(budget) == [("threshold_crossed", 70), ("threshold_crossed", 90)]


def test_falling_back_below_resolves_and_a_new_period_starts_fresh(acme):
    budget = cost_budget(acme, action=Budget.Action.DEGRADE)
    spend("60.00")
    spend("52.00", day=3)  # 112
    budgets_evaluate()
    assert period_of(budget).over_limit
    # Re-costing lowers day 3 (a corrected price): 60 + 20 = 80, under 90 and 110
    CostRollup.objects.filter(day=date(2026, 11, 3)).update(cost=D("20"))
    budgets_evaluate()
    assert alerts_of(budget)[:2] == [("resolved", 90), ("resolved", 110)]
    state = period_of(budget)
    assert state.crossed == [70] and not state.over_limit
    assert [e["threshold"] for e in events_of("budget.resolved")] == [110, 90]
    budgets_evaluate()  # resolved fires once
    assert len(alerts_of(budget)) == 5

    with time_machine.travel(datetime(2026, 12, 1, 0, 5, tzinfo=UTC), tick=False):
        budgets_evaluate()
    december = period_of(budget, date(2026, 12, 1))
    assert (december.period_end, december.measured, december.crossed) == (
        date(2027, 1, 1),
        D("0"),
        [],
    )
    assert period_of(budget).crossed == [70]  # November kept as it was
    assert len(alerts_of(budget)) == 5


def test_alerts_carry_the_forecast_and_top_drivers(acme, clock):
    budget = cost_budget(acme, amount="1000")
    # 10 whole days of 8.00 (Nov 10-19: 6.00 chat + 2.00 search): a run rate of 8.00 a day
    for day in range(10, 20):
        spend("6.00", day=day)
        spend("2.00", day=day, feature="search", endpoint="/v1/search")
    spend("700.00", day=20)  # today, part-day: 780 so far
    budgets_evaluate()
    state = period_of(budget)
    assert state.measured == D("780")
    # Whole days Nov 1-19: 9 zeros then 10 x 8.00 = 80; 11 days remain (Nov 20-30). The
    # forecast projects them from the days so far but never below the 780 already spent.
    assert state.forecast >= D("780")
    drivers = {(d["dimension"], d["value"]): d for d in state.drivers}
    # chat: 60 + 700 = 760 of 780 = 97.44 %; search: 20 of 780 = 2.56 %
    assert drivers[("feature", "chat")]["amount"] == "760"
    assert drivers[("feature", "chat")]["share"] == "97.44"
    assert drivers[("feature", "search")]["share"] == "2.56"
    assert ("tenant", "acme") not in drivers  # the budget is acme's: no tenant breakdown
    # the largest first: workflow support (every call) 780, then chat and /v1/chat 760
    assert [(d["dimension"], d["value"]) for d in state.drivers[:3]] == [
        ("workflow", "support"),
        ("endpoint", "/v1/chat"),
        ("feature", "chat"),
    ]
    assert all(d["dimension"] != "model" for d in state.drivers)  # no call named a model
    crossed = events_of("budget.threshold_crossed")[0]
    assert crossed["threshold"] == 70 and crossed["forecast"] == str(state.forecast)


def test_the_run_rate_forecast_of_a_steady_month(acme, clock):
    clock.move_to(datetime(2026, 11, 11, 12, 0, tzinfo=UTC))
    budget = cost_budget(acme, amount="1000")
    for day in range(1, 11):
        spend("10.00", day=day)
    budgets_evaluate()
    # 10 whole days of 10.00 (a week and a bit: seasonal naive repeats the last week's
    # days): 100 so far + 20 remaining days x 10.00 = 300
    assert period_of(budget).forecast == D("300")


def test_a_months_first_day_is_forecast_from_the_month_before(acme, clock):
    # Given the 28 days before November (4 to 31 October) at 10.00 a day, and no whole day
    # of November yet
    clock.move_to(datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    budget = cost_budget(acme, amount="1000")
    october = [
        {"id": f"oct{day}", "tenant": "acme", "type": "api.call", "cost": "10.00",
         "timestamp": f"2026-10-{day:02d}T10:00:00Z"}
        for day in range(4, 32)
    ]  # fmt: skip
    ingest_events(*october, backfill=True)
    rollup_pending_run()
    cost_rollup_pending_run()

    budgets_evaluate()

    # Then November (30 days) is projected from October's shape: 30 x 10.00 = 300, while
    # nothing of it is spent yet
    state = period_of(budget)
    assert state.measured == 0
    assert state.forecast == D("300")


def test_cost_scopes_feature_workflow_endpoint_and_cost_center(make_tenant, clock):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    ml = cost_center_create(code="ml", name="Machine learning")
    spend("10.00")  # acme chat /v1/chat support
    spend("5.00", tenant="globex")  # globex chat /v1/chat support
    spend("7.00", feature="search", endpoint="/v1/search", workflow="")  # acme search
    spend("4.00", feature="embed", endpoint="/v1/embed", workflow="", team="ml")  # acme, ml
    common = {"measure": Budget.Measure.COST, "amount": D("100")}
    feature_all = budget_create(name="chat", scope="feature", scope_value="chat", **common)
    feature_acme = budget_create(
        name="acme chat", scope="feature", scope_value="chat", tenant=acme, **common
    )
    endpoint = budget_create(name="search", scope="endpoint", scope_value="/v1/search", **common)
    workflow = budget_create(name="support", scope="workflow", scope_value="support", **common)
    center = budget_create(name="ml", scope="cost_center", cost_center=ml, **common)
    tenant = budget_create(name="globex", scope="tenant", tenant=globex, **common)

    budgets_evaluate()

    measured = {b.name: period_of(b).measured for b in (
        feature_all, feature_acme, endpoint, workflow, center, tenant
    )}  # fmt: skip
    assert measured == {
        "chat": D("15"),  # 10 + 5
        "acme chat": D("10"),
        "search": D("7"),
        "support": D("15"),  # 10 + 5
        "ml": D("4"),  # the team code maps it
        "globex": D("5"),
    }
    tenants = [d for d in period_of(feature_all).drivers if d["dimension"] == "tenant"]
    # acme 10 of 15 = 66.67 %, globex 5 of 15 = 33.33 %
    assert [(d["value"], d["amount"], d["share"]) for d in tenants] == [
        ("acme", "10", "66.67"),
        ("globex", "5", "33.33"),
    ]


def test_usage_units_of_a_count_and_a_sum_meter(make_tenant, clock):
    catalog_load()
    acme = make_tenant("acme")
    calls(7)
    calls(3, day=5)
    calls(2, tenant="acme", kind="job.run", quantity="2.5")  # the units meter sums quantity
    make_tenant("globex")
    calls(4, tenant="globex")
    count = budget_create(
        name="calls", scope="tenant", tenant=acme, measure="usage", meter=meter_get(code="calls"),
        amount=D("10"),
    )  # fmt: skip
    units = budget_create(
        name="units", scope="tenant", tenant=acme, measure="usage", meter=meter_get(code="units"),
        amount=D("10"),
    )  # fmt: skip
    budgets_evaluate()
    # acme's api.calls: 7 + 3 = 10 of 10 (globex's 4 are not acme's)
    assert (period_of(count).measured, period_of(count).percent) == (D("10"), D("100.00"))
    assert period_of(units).measured == D("5")  # 2 x 2.5
    assert alerts_of(count) == [("threshold_crossed", 70), ("threshold_crossed", 90)]


def test_billed_amount_counts_the_running_period_and_credit_notes_lower_it(make_tenant, clock):
    catalog_load()
    acme = make_tenant("acme")
    subscribe(acme, "calls", datetime(2026, 10, 1, tzinfo=UTC))  # 1.00 USD per call
    calls(30)
    running = budget_create(
        name="billed", scope="tenant", tenant=acme, measure="billed_amount", amount=D("40")
    )
    budgets_evaluate()
    # November's preview: 30 calls x 1.00 = 30.00 of 40 = 75 %
    state = period_of(running)
    assert (state.measured, state.percent) == (D("30"), D("75.00"))
    assert alerts_of(running) == [("threshold_crossed", 70)]

    # A custom period ending 2 December covers November's invoice once it is finalized.
    custom = budget_create(
        name="billed nov", scope="tenant", tenant=acme, measure="billed_amount",
        amount=D("40"), period="custom", period_start=date(2026, 11, 1),
        period_end=date(2026, 12, 2),
    )  # fmt: skip
    with time_machine.travel(datetime(2026, 12, 1, 2, 0, tzinfo=UTC), tick=False):
        billing_run()
        invoice = Invoice.objects.get(tenant=acme, period_start=datetime(2026, 11, 1, tzinfo=UTC))
        budgets_evaluate(budget_ids=[custom.id])
        assert period_of(custom).measured == D("30")  # the finalized 30.00
        credit_note_issue(invoice_id=invoice.id, amount=D("10.00"), reason="goodwill")
        budgets_evaluate(budget_ids=[custom.id])
    # 30.00 - 10.00 (no tax) = 20.00 of 40 = 50 %: back below 70
    assert period_of(custom).measured == D("20")
    assert alerts_of(custom) == [("resolved", 70), ("threshold_crossed", 70)]


def test_credit_consumption_is_debits_less_refunds(make_tenant, clock):
    catalog_load()
    acme = make_tenant("acme")
    subscription = subscribe(acme, "growth", datetime(2026, 10, 1, tzinfo=UTC))  # base 99.00
    credit_grant_issue(
        tenant_id=acme.id, currency="USD", amount=D("150"),
        effective_at=datetime(2026, 9, 1, tzinfo=UTC), expires_at=None, reason="welcome",
    )  # fmt: skip
    budget = budget_create(
        name="credits", scope="tenant", tenant=acme, measure="credit_consumption",
        amount=D("100"),
    )  # fmt: skip
    with time_machine.travel(datetime(2026, 11, 1, 2, 0, tzinfo=UTC), tick=False):
        billing_run()  # October finalized: 99.00 of credits spent on it, on 1 November
    budgets_evaluate()
    # 99 of 100 = 99 %
    assert (period_of(budget).measured, period_of(budget).percent) == (D("99"), D("99.00"))
    assert period_of(budget).drivers[0]["value"] == "welcome"
    invoice = Invoice.objects.get(subscription=subscription, status="finalized")  # October
    invoice_void(invoice_id=invoice.id, reason="billed in error")
    budgets_evaluate()
    # the void gives the 99.00 back: 99 - 99 = 0
    assert period_of(budget).measured == D("0")
    assert alerts_of(budget) == [
        ("resolved", 70),
        ("resolved", 90),
        ("threshold_crossed", 70),
        ("threshold_crossed", 90),
    ]


def test_inactive_budgets_and_ended_custom_periods_are_not_evaluated(acme):
    gone = cost_budget(acme)
    gone.active = False
    gone.save()
    ended = cost_budget(
        acme, name="october", period="custom", period_start=date(2026, 10, 1),
        period_end=date(2026, 11, 1),
    )  # fmt: skip
    spend("95.00")
    assert budgets_evaluate().budgets == 0
    assert not BudgetPeriod.objects.filter(budget__in=[gone, ended]).exists()


def test_a_slower_evaluation_never_overwrites_a_newer_one(acme):
    budget = cost_budget(acme)
    spend("95.00")
    budgets_evaluate()
    budgets_evaluate(as_of=datetime(2026, 11, 20, 11, 0, tzinfo=UTC))  # began earlier
    state = period_of(budget)
    assert state.evaluated_at == NOW and state.measured == D("95")


def test_the_beat_task_evaluates_by_its_name(acme):
    from celery import current_app

    budget = cost_budget(acme)
    spend("75.00")
    current_app.loader.import_default_modules()
    report = current_app.tasks["alerts.budgets_evaluate"].apply().get()
    assert report == {"budgets": 1, "crossed": 1, "resolved": 0, "credit_alerts": 0}
    assert alerts_of(budget) == [("threshold_crossed", 70)]


def test_the_period_just_ended_is_evaluated_for_two_days_for_late_data(acme, clock):
    clock.move_to(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    budget = cost_budget(acme)
    spend("60.00", day=30)
    budgets_evaluate()  # 60 %
    clock.move_to(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    spend("35.00", day=30)  # a late event of 30 November: 95 %
    budgets_evaluate()
    assert alerts_of(budget) == [("threshold_crossed", 70), ("threshold_crossed", 90)]
    assert period_of(budget).measured == D("95")
    clock.move_to(datetime(2026, 12, 3, 0, 0, tzinfo=UTC))  # two days on: November is closed
    spend("20.00", day=30)
    budgets_evaluate()
    assert period_of(budget).measured == D("95")


def test_a_budget_made_after_a_month_ended_never_had_that_month(acme, clock):
    clock.move_to(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    spend("95.00", day=30)
    clock.move_to(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    budget = cost_budget(acme)
    budgets_evaluate()
    assert list(
        BudgetPeriod.objects.filter(budget=budget).values_list("period_start", flat=True)
    ) == [date(2026, 12, 1)]


def test_evaluation_queries_do_not_grow_with_the_number_of_budgets(make_tenant, clock):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    tenants = [make_tenant(f"t{i}") for i in range(8)]
    spend("1.00", tenant="t0")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            budgets_evaluate()
        return len(captured)

    cost_budget(tenants[0], name="first")
    budget_create(name="chat", scope="feature", scope_value="chat", measure="cost", amount=D(9))
    one = queries()
    for tenant in tenants[1:]:
        cost_budget(tenant, name=tenant.external_id)
        budget_create(
            name=f"{tenant.external_id} chat", scope="feature", scope_value="chat",
            tenant=tenant, measure="cost", amount=D(9),
        )  # fmt: skip
    assert queries() == one  # 16 budgets, the same grouped queries as for 2


def test_changed_thresholds_fire_the_new_ones_and_drop_the_old_silently(acme):
    from apps.alerts.services.budgets.manage import budget_update

    budget = cost_budget(acme)
    spend("75.00")
    budgets_evaluate()
    budget_update(budget_id=budget.id, changes={"thresholds": [50, 100]})
    budgets_evaluate()
    assert alerts_of(budget) == [("threshold_crossed", 50), ("threshold_crossed", 70)]
    assert period_of(budget).crossed == [50]
