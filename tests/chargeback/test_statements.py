"""Drafting statements from the cost rollups: mapping, shared pools by every method, the
Unallocated statement, rounding once per statement, budget and variance."""

from datetime import date
from decimal import Decimal

import pytest

from apps.chargeback.models import Statement, StatementLine
from apps.chargeback.services.mapping import CostCenterMap
from apps.chargeback.services.statements import statements_run
from apps.tenants.models import CostCenter
from tests.chargeback.chargeback_setup import NOW, call, center, october, pool, record, rule

__all__ = ["NOW"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture(autouse=True)
def tenant(make_tenant):
    return make_tenant("acme")


def statement_of(code: str | None) -> Statement:
    return (
        Statement.objects.get(cost_center__code=code)
        if code
        else Statement.objects.get(cost_center=None)
    )


def totals() -> dict[str, Decimal]:
    return {
        (s.cost_center.code if s.cost_center else ""): s.total_amount
        for s in Statement.objects.all()
    }


def statement_centers(*codes: str) -> list[CostCenter]:
    return [CostCenter.objects.get(code=c) for c in codes]


def lines_sum(statement: Statement) -> Decimal:
    return sum((ln.amount for ln in statement.lines.all()), Decimal(0))


# --- mapping ---------------------------------------------------------------------------------


def test_team_wins_then_endpoint_then_feature_then_service():
    alpha, beta, gamma = center("alpha"), center("beta"), center("gamma")
    rule("endpoint", "/v1/chat", gamma)
    rule("feature", "search", beta)
    rule("service", "api", alpha)
    mapping = CostCenterMap.load()

    assert mapping.cost_center_of({"team": "beta", "endpoint": "/v1/chat"}) == beta.id
    assert (
        mapping.cost_center_of({"team": "ghosts", "endpoint": "/v1/chat", "feature": "search"})
        == gamma.id
    )
    assert mapping.cost_center_of({"feature": "search", "service": "api"}) == beta.id
    assert mapping.cost_center_of({"service": "api"}) == alpha.id
    assert mapping.cost_center_of({"team": "ghosts", "feature": "other"}) is None
    assert mapping.cost_center_of({}) is None


def test_unmapped_cost_lands_on_the_unallocated_statement_never_dropped():
    center("alpha")
    record(call("2.00", team="alpha"), call("0.75", feature="nobody-owns-this"))

    report = statements_run(period=october())

    assert report.drafted == ["", "alpha"]
    assert totals() == {"alpha": Decimal("2.00"), "": Decimal("0.75")}
    unallocated = statement_of(None)
    assert (unallocated.budget_amount, unallocated.variance_amount) == (None, None)
    assert unallocated.calls == 1


def test_rules_route_calls_into_statements():
    alpha, beta = center("alpha"), center("beta")
    rule("feature", "search", alpha)
    rule("endpoint", "/v1/embed", beta)
    record(
        call("1.00", feature="search"),
        call("2.00", feature="search", endpoint="/v1/embed"),
        call("4.00", service="batch"),
    )

    statements_run(period=october())

    assert totals() == {"alpha": Decimal("1.00"), "beta": Decimal("2.00"), "": Decimal("4.00")}


# --- rounding --------------------------------------------------------------------------------


def test_direct_cost_is_rounded_once_per_statement_and_split_over_its_lines():
    # three days of 0.333: the statement is 0.999 -> 1.00 (not 3 x 0.33 = 0.99)
    center("alpha")
    record(*(call("0.333", team="alpha", day=d) for d in (3, 4, 5)))

    statements_run(period=october())

    statement = statement_of("alpha")
    assert statement.direct_amount == Decimal("1.00")
    assert statement.total_amount == Decimal("1.00")
    assert [(ln.day, ln.amount) for ln in statement.lines.all()] == [
        (date(2026, 10, 3), Decimal("0.34")),
        (date(2026, 10, 4), Decimal("0.33")),
        (date(2026, 10, 5), Decimal("0.33")),
    ]
    assert [ln.exact_amount for ln in statement.lines.all()] == [Decimal("0.333")] * 3


def test_half_a_cent_rounds_up():
    center("alpha")
    record(call("1.005", team="alpha"))

    statements_run(period=october())

    assert statement_of("alpha").total_amount == Decimal("1.01")


def test_uncosted_calls_are_counted_at_zero():
    center("alpha")
    record(call("1.00", team="alpha"), call(None, team="alpha", provider="", model=""))

    statements_run(period=october())

    statement = statement_of("alpha")
    assert (statement.calls, statement.uncosted_calls) == (2, 1)
    assert statement.total_amount == Decimal("1.00")


# --- budget ----------------------------------------------------------------------------------


def test_budget_and_variance_are_budget_minus_total():
    center("alpha", budget="10.00")
    center("beta", budget="10.00")
    center("gamma")
    record(
        call("12.50", team="alpha"),
        call("4.25", team="beta"),
        call("1.00", team="gamma"),
    )

    statements_run(period=october())

    alpha, beta, gamma = statement_of("alpha"), statement_of("beta"), statement_of("gamma")
    assert (alpha.budget_amount, alpha.variance_amount) == (Decimal("10.00"), Decimal("-2.50"))
    assert (beta.budget_amount, beta.variance_amount) == (Decimal("10.00"), Decimal("5.75"))
    assert (gamma.budget_amount, gamma.variance_amount) == (None, None)


def test_variance_counts_the_allocated_share_too():
    center("alpha", budget="100.00")
    record(call("30.00", team="alpha"))
    pool("platform", "45.50", "even")

    statements_run(period=october())

    alpha = statement_of("alpha")
    assert (alpha.direct_amount, alpha.allocated_amount) == (Decimal("30.00"), Decimal("45.50"))
    assert alpha.total_amount == Decimal("75.50")
    assert alpha.variance_amount == Decimal("24.50")


# --- pools -----------------------------------------------------------------------------------


def three_centers() -> None:
    """alpha: 1 call, 6.00, 100 tokens; beta: 3 calls, 3.00, 200 tokens; gamma: 6 calls,
    1.00, 700 tokens."""
    for code in ("alpha", "beta", "gamma"):
        center(code)
    record(
        call("6.00", team="alpha", input_tokens=60, output_tokens=40),
        *(call("1.00", team="beta", input_tokens=50, output_tokens=0) for _ in range(2)),
        call("1.00", team="beta", input_tokens=80, output_tokens=20),
        *(call("0.25", team="gamma", input_tokens=100, output_tokens=0) for _ in range(4)),
        *(call("0", team="gamma", input_tokens=100, output_tokens=50) for _ in range(2)),
    )


@pytest.mark.parametrize(
    ("method", "shares", "expected"),
    [
        # 10.01 / 3 = 3.3366..: floors 3.33 each, two cents left, ties -> alpha, beta
        pytest.param("even", {}, ("3.34", "3.34", "3.33"), id="even"),
        # 1:3:6 of 10.01 = 1.001, 3.003, 6.006: the cent left goes to gamma (.6)
        pytest.param("requests", {}, ("1.00", "3.00", "6.01"), id="requests"),
        # 6:3:1 of 10.01 = 6.006, 3.003, 1.001: alpha's .6 gets the cent
        pytest.param("direct_cost", {}, ("6.01", "3.00", "1.00"), id="direct-cost"),
        # 100:200:700 tokens of 10.01 = 1.001, 2.002, 7.007: gamma's .7 gets the cent
        pytest.param("tokens", {}, ("1.00", "2.00", "7.01"), id="tokens"),
        # 50/30/20 % of 10.01 = 5.005, 3.003, 2.002: alpha's .5 gets the cent
        pytest.param(
            "fixed", {"alpha": 50, "beta": 30, "gamma": 20}, ("5.01", "3.00", "2.00"), id="fixed"
        ),
    ],
)
def test_each_pool_method_splits_by_largest_remainder(method, shares, expected):
    three_centers()
    pool("platform", "10.01", method, shares=shares)

    statements_run(period=october())

    parts = {
        s.cost_center.code: s.allocated_amount for s in Statement.objects.exclude(cost_center=None)
    }
    assert parts == dict(zip(("alpha", "beta", "gamma"), map(Decimal, expected), strict=True))
    assert sum(parts.values()) == Decimal("10.01")
    assert not Statement.objects.filter(cost_center=None).exists()


def test_pool_lines_carry_the_method_and_exact_share():
    three_centers()
    pool("platform", "10.01", "requests", name="Platform team")

    statements_run(period=october())

    line = statement_of("gamma").lines.get(kind=StatementLine.Kind.ALLOCATED)
    assert (line.method, line.description) == ("requests", "Platform team (requests)")
    assert line.exact_amount == Decimal("6.006")
    assert line.amount == Decimal("6.01")
    assert statement_of("gamma").total_amount == Decimal("7.01")
    assert lines_sum(statement_of("gamma")) == Decimal("7.01")


def test_a_pool_of_twelve_thousand_by_requests_one_to_one_to_one():
    for code in ("alpha", "beta", "gamma"):
        center(code)
    record(*(call("0.10", team=code) for code in ("alpha", "beta", "gamma")))
    pool("gpu-cluster", "12000.00", "requests")

    statements_run(period=october())

    assert totals() == {
        "alpha": Decimal("4000.10"),
        "beta": Decimal("4000.10"),
        "gamma": Decimal("4000.10"),
    }


def test_a_hundred_even_three_ways():
    for code in ("alpha", "beta", "gamma"):
        center(code)
    record(*(call("1.00", team=code) for code in ("alpha", "beta", "gamma")))
    pool("platform", "100.00", "even")

    statements_run(period=october())

    assert totals() == {
        "alpha": Decimal("34.34"),
        "beta": Decimal("34.33"),
        "gamma": Decimal("34.33"),
    }


def test_targets_narrow_who_shares_a_pool():
    three_centers()
    alpha, gamma = statement_centers("alpha", "gamma")
    pool("search-infra", "10.01", "even", targets=[alpha, gamma])

    statements_run(period=october())

    assert statement_of("alpha").allocated_amount == Decimal("5.01")
    assert statement_of("beta").allocated_amount == Decimal("0.00")
    assert statement_of("gamma").allocated_amount == Decimal("5.00")
    assert not statement_of("beta").lines.filter(kind=StatementLine.Kind.ALLOCATED).exists()


def test_a_target_without_cost_still_shares_an_even_pool():
    # alpha has cost, delta (a target) has none: even over targets is 2.50 each
    center("alpha")
    delta = center("delta")
    alpha = statement_centers("alpha")[0]
    record(call("1.00", team="alpha"))
    pool("office", "5.00", "even", targets=[alpha, delta])

    statements_run(period=october())

    assert totals() == {"alpha": Decimal("3.50"), "delta": Decimal("2.50")}


def test_a_pool_with_nobody_to_share_it_goes_to_unallocated():
    center("alpha")
    record(call("3.00", feature="unmapped"))
    pool("platform", "250.00", "direct_cost")

    statements_run(period=october())

    unallocated = statement_of(None)
    assert (unallocated.direct_amount, unallocated.allocated_amount) == (
        Decimal("3.00"),
        Decimal("250.00"),
    )
    assert unallocated.total_amount == Decimal("253.00")
    assert not Statement.objects.exclude(cost_center=None).exists()


def test_a_pool_by_requests_whose_targets_made_no_calls_goes_to_unallocated():
    center("alpha")
    beta = center("beta")
    record(call("3.00", team="alpha"))
    pool("beta-tools", "40.00", "requests", targets=[beta])

    statements_run(period=october())

    assert totals() == {"alpha": Decimal("3.00"), "": Decimal("40.00")}


def test_an_even_pool_in_a_month_without_calls_is_unallocated():
    center("alpha")
    pool("platform", "99.99", "even")

    report = statements_run(period=october())

    assert report.drafted == [""]
    assert totals() == {"": Decimal("99.99")}


@pytest.mark.parametrize(
    ("starts_on", "ends_on", "active", "applies"),
    [
        pytest.param(None, None, True, True, id="always"),
        pytest.param(date(2026, 10, 1), date(2026, 11, 1), True, True, id="october-only"),
        pytest.param(date(2026, 11, 1), None, True, False, id="starts-later"),
        pytest.param(None, date(2026, 10, 1), True, False, id="ended-before"),
        pytest.param(date(2026, 9, 1), None, True, True, id="started-before"),
        pytest.param(None, None, False, False, id="inactive"),
    ],
)
def test_a_pool_applies_between_starts_on_and_ends_on(starts_on, ends_on, active, applies):
    center("alpha")
    record(call("1.00", team="alpha"))
    pool("platform", "20.00", "even", starts_on=starts_on, ends_on=ends_on, active=active)

    statements_run(period=october())

    assert statement_of("alpha").total_amount == (Decimal("21.00") if applies else Decimal("1.00"))


def test_fixed_shares_for_unknown_codes_are_ignored_and_the_rest_takes_the_pool():
    center("alpha")
    center("beta")
    record(call("1.00", team="alpha"))
    pool("legal", "9.00", "fixed", shares={"alpha": "25", "beta": "50", "gone": "25"})

    statements_run(period=october())

    # 25:50 of 9.00 = 3.00, 6.00
    assert totals() == {"alpha": Decimal("4.00"), "beta": Decimal("6.00")}


def test_jpy_statements_have_no_minor_unit(settings):
    settings.PERCALL_OPERATOR_CURRENCY = "JPY"
    for code in ("alpha", "beta", "gamma"):
        center(code)
    record(*(call("100.5", team=code, cost_currency="JPY") for code in ("alpha", "beta", "gamma")))
    pool("platform", "1000", "even")

    statements_run(period=october())

    # 100.5 -> 101 (half up); 1000 / 3 -> 334, 333, 333
    assert totals() == {"alpha": Decimal("435"), "beta": Decimal("434"), "gamma": Decimal("434")}
    assert {s.currency for s in Statement.objects.all()} == {"JPY"}


# --- drafts ----------------------------------------------------------------------------------


def test_a_rerun_refreshes_the_draft_in_place():
    center("alpha")
    record(call("1.00", team="alpha"))
    statements_run(period=october())
    first = statement_of("alpha")

    record(call("2.50", team="alpha", day=20))
    report = statements_run(period=october())

    assert report.drafted == ["alpha"]
    again = statement_of("alpha")
    assert again.id == first.id
    assert again.total_amount == Decimal("3.50")
    assert [ln.position for ln in again.lines.all()] == [1, 2]
    assert lines_sum(again) == Decimal("3.50")


def test_the_top_drivers_are_listed_by_amount():
    center("alpha")
    record(
        call("3.00", team="alpha", service="api", feature="chat"),
        call("1.00", team="alpha", service="api", feature="search"),
    )

    statements_run(period=october())

    drivers = statement_of("alpha").drivers
    assert [(d["feature"], d["amount"], d["share"]) for d in drivers] == [
        ("chat", "3.00", "75.0"),
        ("search", "1.00", "25.0"),
    ]
