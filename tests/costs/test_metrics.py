"""Every cost metric over the known traffic of ``traffic`` (October, with September as the
previous period): figures, previous values and changes, rounding (12 places per call, 6 for
ratios, half up), nulls where a denominator is 0. Expected numbers by hand."""

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP
from decimal import Decimal as D

import pytest

from apps.billing.services.runs import billing_run
from apps.billing.services.subscriptions import subscription_create
from apps.catalog.selectors import plan_get
from apps.costs.errors import AnalyticsQueryInvalid
from apps.costs.metrics import growth, metric_answer, per, ratio, slope
from apps.costs.selectors import cost_period_parse, group_by_parse
from apps.costs.services.rollup import cost_rollup_pending_run
from apps.metering.services.rollup import rollup_pending_run
from tests.costs import traffic as t
from tests.metering.ingesting import ingest_events

NOW = datetime(2026, 11, 2, tzinfo=UTC)
T4 = "d4" * 16
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


def r6(value: D) -> D:
    return value.quantize(D("0.000001"), rounding=ROUND_HALF_UP)


def r12(value: D) -> D:
    return value.quantize(D("1e-12"), rounding=ROUND_HALF_UP)


def num(text: str | None) -> D | None:
    return None if text is None else D(text)


@pytest.fixture
def tenants(make_tenant):
    return t.traffic_send(make_tenant, catalog=t.BILLING)


def answer(name: str, period: str = "2026-10", group_by: tuple[str, ...] | None = None, **kw):
    return metric_answer(name, period=cost_period_parse(period), group_by=group_by, **kw)


def by_group(report: dict) -> dict[tuple, dict]:
    return {tuple(r["group"][g] for g in report["group_by"]): r for r in report["rows"]}


# --- the metrics --------------------------------------------------------------------------


def test_cost_with_the_previous_month_and_the_change(tenants):
    report = answer("cost")

    assert report["period"] == "2026-10"
    assert (report["start"], report["end"]) == ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
    assert (report["previous_period"], report["currency"], report["group_by"]) == (
        "2026-09",
        "USD",
        [],
    )
    # 0.09899 + 0.06786 + 0.028 = 0.19485 over 14 calls; September 0.1134 over 4
    # change 0.19485 / 0.1134 - 1 = 0.7182539... -> 0.718254
    assert report["rows"] == [
        {
            "group": {},
            "value": "0.19485",
            "cost": "0.19485",
            "calls": 14,
            "previous": "0.1134",
            "change": "0.718254",
        }
    ]
    assert D("0.19485") == t.OCT_COST
    assert D("0.1134") == t.SEP_COST


def test_cost_by_tenant_is_largest_first_and_names_the_tenant(tenants):
    report = answer("cost", group_by=("tenant",))

    acme, globex = str(tenants["acme"].id), str(tenants["globex"].id)
    assert [r["group"] for r in report["rows"]] == [
        {"tenant": acme, "tenant_name": "Acme"},
        {"tenant": globex, "tenant_name": "Globex"},
    ]
    first, second = report["rows"]
    # acme 0.09899 + 0.06786 = 0.16685; change 0.16685 / 0.1134 - 1 = 0.4713403... -> 0.47134
    assert (first["value"], first["calls"], first["previous"], first["change"]) == (
        "0.16685",
        13,
        "0.1134",
        "0.47134",
    )
    # globex had no September: no previous, no change
    assert (second["value"], second["previous"], second["change"]) == ("0.028", None, None)


def test_one_tenant_only(tenants):
    report = answer("cost", group_by=(), tenant_id=tenants["globex"].id)

    assert [(r["value"], r["calls"]) for r in report["rows"]] == [("0.028", 1)]


def test_a_range_of_days_and_its_previous_range(tenants):
    report = answer("cost", period="2026-10-05..2026-10-06", group_by=("feature",))

    assert (report["period"], report["previous_period"]) == (
        "2026-10-05..2026-10-06",
        "2026-10-04..2026-10-05",
    )
    assert (report["start"], report["end"]) == ("2026-10-05T00:00:00Z", "2026-10-06T00:00:00Z")
    rows = by_group(report)
    # 10-05 only: every acme day-1 call but A8 is "chat"; A8 (uncosted) is "search"
    assert num(rows[("chat",)]["value"]) == t.A1 + t.A2 + t.A3 + t.A4 + t.A5 + t.A6 + t.A7
    assert (rows[("chat",)]["calls"], rows[("chat",)]["previous"]) == (7, None)
    assert (rows[("search",)]["value"], rows[("search",)]["calls"]) == ("0", 1)


def test_cost_per_call_to_twelve_places(tenants):
    row = answer("cost_per_call")["rows"][0]

    # 0.19485 / 14 = 0.0139178571428571... -> 0.013917857143; September 0.1134 / 4 = 0.02835
    assert (row["value"], row["previous"]) == ("0.013917857143", "0.02835")
    assert num(row["value"]) == r12(t.OCT_COST / 14)
    # 0.013917857143 / 0.02835 - 1 = -0.5090702... -> -0.50907
    assert num(row["change"]) == r6(D("0.013917857143") / D("0.02835") - 1)
    assert row["change"] == "-0.50907"


def test_requests(tenants):
    row = answer("requests")["rows"][0]

    # 14 calls, 1 failed (A6); September 4: change 14 / 4 - 1 = 2.5
    assert (row["value"], row["calls"], row["errors"], row["previous"], row["change"]) == (
        14,
        14,
        1,
        4,
        "2.5",
    )


def test_amplification_is_traced_calls_per_root_call(tenants):
    row = answer("amplification")["rows"][0]

    # T1 has 5 spans, T2 3, with one root each: 8 / 2 = 4; September T3: 2 / 1 = 2
    assert (row["value"], row["traced_calls"], row["root_calls"]) == ("4", 8, 2)
    assert (row["previous"], row["change"]) == ("2", "1")


def test_call_mix_is_the_external_share_of_calls_and_of_cost(tenants):
    row = answer("call_mix")["rows"][0]

    external_cost = t.A3 + t.A4 + t.B3 + t.B5  # 0.032 + 0.055 + 0.06 + 0 = 0.147
    assert external_cost == D("0.147")
    # 4 external calls (A3, A4, B3, B5) of 14: 0.2857142... -> 0.285714
    assert (row["value"], row["internal_calls"], row["external_calls"]) == ("0.285714", 10, 4)
    assert (row["external_cost"], row["cost"]) == ("0.147", "0.19485")
    # 0.147 / 0.19485 = 0.7544264... -> 0.754426
    assert row["external_cost_share"] == "0.754426"
    # September: S4 of 4 calls = 0.25; change 0.285714 / 0.25 - 1 = 0.142856
    assert (row["previous"], row["change"]) == ("0.25", "0.142856")


def test_tokens_per_request_by_model(tenants):
    rows = by_group(answer("tokens_per_request"))

    assert set(rows) == {("gpt-x",), ("claude-y",), ("mystery",), ("",)}
    gpt = rows[("gpt-x",)]
    # A2, A5, A6, B2, G1: input 1000 + 1000 + 500 + 400 + 10000 = 12900, output 200 + 200 + 0
    # + 600 + 1000 = 2000; (12900 + 2000) / 5 = 2980; reasoning 500 / 5 = 100
    assert (gpt["value"], gpt["llm_calls"]) == ("2980", 5)
    assert (gpt["input_tokens_per_request"], gpt["output_tokens_per_request"]) == ("2580", "400")
    assert (gpt["cache_read_tokens_per_request"], gpt["reasoning_tokens_per_request"]) == (
        "0",
        "100",
    )
    # September S2: 1000 + 100 = 1100; 2980 / 1100 - 1 = 1.7090909... -> 1.709091
    assert (gpt["previous"], gpt["change"]) == ("1100", "1.709091")
    claude = rows[("claude-y",)]
    # A7 2000 + 100, B4 1000 + 0 over 2 calls = 1550; cache reads (1500 + 1000) / 2 = 1250
    assert (claude["value"], claude["cache_read_tokens_per_request"]) == ("1550", "1250")
    # September S3: 1000; 1550 / 1000 - 1 = 0.55
    assert (claude["previous"], claude["change"]) == ("1000", "0.55")
    assert rows[("mystery",)]["value"] == "200"
    # calls without a model are no LLM calls: no denominator, null
    assert (rows[("",)]["value"], rows[("",)]["llm_calls"]) == (None, 0)
    # largest first, the null last
    assert [r["group"]["model"] for r in answer("tokens_per_request")["rows"]] == [
        "gpt-x",
        "claude-y",
        "mystery",
        "",
    ]


def test_retries_and_what_wasted_calls_cost(tenants):
    row = answer("retries")["rows"][0]

    # 1 retry (A5) of 14 calls = 0.0714285... -> 0.071429; A6 failed
    assert (row["value"], row["calls"], row["retries"], row["errors"]) == ("0.071429", 14, 1, 1)
    # wasted: A5 + A6 = 0.0036 + 0.001 = 0.0046; share 0.0046 / 0.19485 = 0.0236079... -> 0.023608
    assert num(row["retry_cost"]) == t.A5 + t.A6
    assert (row["retry_cost"], row["retry_cost_share"]) == ("0.0046", "0.023608")
    # September had no retries: 0 of 4 is 0, and growth from 0 is null
    assert (row["previous"], row["change"]) == ("0", None)


def test_cache_hit_rate_and_avoided_cost(tenants):
    row = answer("cache")["rows"][0]

    # A7 and B4 of 14 = 0.1428571... -> 0.142857; avoided 0.00405 + 0.001 = 0.00505
    assert (row["value"], row["calls"], row["cache_hits"]) == ("0.142857", 14, 2)
    assert num(row["avoided_cost"]) == t.A7_AVOIDED + t.B4_AVOIDED
    assert row["avoided_cost"] == "0.00505"
    # September S3 of 4 = 0.25; 0.142857 / 0.25 - 1 = -0.428572
    assert (row["previous"], row["change"]) == ("0.25", "-0.428572")


def test_cost_per_workflow_run(tenants):
    rows = by_group(answer("cost_per_run"))

    support = rows[("support",)]
    workflow_cost = t.A1 + t.A2 + t.A3 + t.A4 + t.A5 + t.B1 + t.B2 + t.B3  # 0.1604
    assert workflow_cost == D("0.1604")
    # 0.1604 over 2 runs (T1, T2) = 0.0802
    assert (support["value"], support["workflow_cost"], support["runs"]) == ("0.0802", "0.1604", 2)
    # September: (0.0003 + 0.0028) / 1 = 0.0031; 0.0802 / 0.0031 - 1 = 24.8709677... -> 24.870968
    assert (support["previous"], support["change"]) == ("0.0031", "24.870968")
    # calls outside any workflow make no runs
    assert (rows[("",)]["value"], rows[("",)]["runs"]) == (None, 0)


def test_a_trace_outside_any_workflow_is_no_workflow_run(tenants):
    # a root span without a workflow (globex, 10-06): a trace, but no workflow run
    ingest_events(
        t.event("globex", "http.request", f"{t.DAY2}T13:00:00Z", service="gateway", **t.span(T4, 1))
    )
    rollup_pending_run()
    cost_rollup_pending_run()

    row = answer("cost_per_run", group_by=())["rows"][0]

    # still 0.1604 over the 2 runs of "support"
    assert (row["value"], row["workflow_cost"], row["runs"]) == ("0.0802", "0.1604", 2)
    assert answer("amplification")["rows"][0]["root_calls"] == 3


def test_coverage_by_source(tenants):
    row = answer("coverage")["rows"][0]

    # own cost: A4, B3, B4; price book: A1 A2 A3 A5 A6 A7 B1 B2 G1; none: A8, B5
    # costed 12 of 14 = 0.8571428... -> 0.857143
    assert (row["value"], row["calls"]) == ("0.857143", 14)
    assert (row["event_costed_calls"], row["price_book_calls"], row["uncosted_calls"]) == (3, 9, 2)
    # September all 4 costed: 1; 0.857143 / 1 - 1 = -0.142857
    assert (row["previous"], row["change"]) == ("1", "-0.142857")


def test_coverage_by_provider(tenants):
    rows = by_group(answer("coverage", group_by=("provider",)))

    assert rows[("local",)]["value"] == "0"  # A8: not in the book
    assert rows[("mapsco",)]["value"] == "0"  # B5: GBP without a rate
    assert rows[("openai",)]["value"] == "1"
    assert rows[("transco",)]["event_costed_calls"] == 2


def test_workflow_depth(tenants):
    rows = by_group(answer("workflow_depth"))

    # T1 (5 spans, 3 deep) and T2 (3 spans, 2 deep): 8 calls / 2 runs = 4, deepest 3
    assert rows == {
        ("support",): {
            "group": {"workflow": "support"},
            "value": "4",
            "runs": 2,
            "calls": 8,
            "max_depth": 3,
            "previous": "2",  # T3: 2 spans, 1 run
            "change": "1",
        }
    }
    by_tenant = answer("workflow_depth", group_by=("tenant", "workflow"))["rows"]
    assert [(r["group"]["tenant_name"], r["runs"]) for r in by_tenant] == [("Acme", 2)]


def test_workflow_depth_groups_by_tenant_and_workflow_only(tenants):
    with pytest.raises(AnalyticsQueryInvalid) as error:
        answer("workflow_depth", group_by=("model",))
    assert error.value.field == "group_by"


def test_margin_is_billed_revenue_less_cost(tenants, make_tenant):
    acme, globex = tenants["acme"], tenants["globex"]
    initech = make_tenant("initech", currency="JPY")
    sep, oct_ = datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)
    subscription_create(tenant=acme, plan=plan_get(code="usd"), start=sep)
    subscription_create(tenant=globex, plan=plan_get(code="eur"), start=oct_)
    subscription_create(tenant=initech, plan=plan_get(code="jpy"), start=oct_)
    billing_run(as_of=NOW)

    report = answer("margin")

    # JPY has no FX rate: its revenue is left out, and said so
    assert report["revenue_currencies_without_fx"] == ["JPY"]
    rows = by_group(report)
    assert set(rows) == {(str(acme.id),), (str(globex.id),)}
    a = rows[(str(acme.id),)]
    # acme October: 10.00 base fee + 7 LLM calls x 0.10 = 10.70; cost 0.16685
    revenue = D("10.00") + 7 * D("0.10")
    cost = t.ACME_DAY1 + t.ACME_DAY2
    assert (num(a["revenue"]), num(a["cost"]), num(a["value"])) == (revenue, cost, revenue - cost)
    assert a["margin"] == "10.53315"
    # 1053.315 / 10.70 = 98.4406542... -> 98.440654
    assert a["margin_pct"] == "98.440654"
    # September: 10.00 + 2 LLM calls x 0.10 = 10.20, less 0.1134 = 10.0866
    assert a["previous"] == "10.0866"
    assert num(a["change"]) == r6(D("10.53315") / D("10.0866") - 1)  # 0.044270...
    g = rows[(str(globex.id),)]
    # globex: (20.00 + 1 x 0.10) EUR at the rate of 10-31 (1.20 from 10-06) = 24.12; cost 0.028
    assert (g["revenue"], g["cost"], g["value"]) == ("24.12", "0.028", "24.092")
    # 2409.2 / 24.12 = 99.8839137... -> 99.883914
    assert g["margin_pct"] == "99.883914"
    assert (g["previous"], g["change"]) == (None, None)


def test_margin_groups_by_tenant_or_feature_only(tenants):
    for group_by in ((), ("model",)):
        with pytest.raises(AnalyticsQueryInvalid) as error:
            answer("margin", group_by=group_by)
        assert error.value.field == "group_by"


def test_marginal_cost_is_the_slope_of_daily_cost_over_daily_calls(tenants):
    row = answer("marginal_cost")["rows"][0]

    # day 1: 8 calls, 0.09899; day 2: 6 calls (acme 5 + globex 1), 0.06786 + 0.028 = 0.09586
    # two points: (0.09899 - 0.09586) / (8 - 6) = 0.001565
    assert num(row["value"]) == (t.ACME_DAY1 - (t.ACME_DAY2 + t.G1)) / (8 - 6)
    assert (row["value"], row["days"], row["calls"], row["cost"]) == ("0.001565", 2, 14, "0.19485")
    # cost grew 0.19485 / 0.1134 - 1 = 0.718254, usage 14 / 4 - 1 = 2.5: not faster
    assert (row["cost_growth"], row["usage_growth"], row["cost_grows_faster"]) == (
        "0.718254",
        "2.5",
        False,
    )
    assert (row["previous"], row["change"]) == (None, None)


def test_marginal_cost_flags_cost_growing_faster_than_usage(tenants):
    rows = by_group(answer("marginal_cost", group_by=("workflow",)))

    support = rows[("support",)]
    # day 1: 5 calls, A1..A5 = 0.09454; day 2: 3 calls, B1..B3 = 0.06586
    # (0.09454 - 0.06586) / (5 - 3) = 0.01434
    assert support["value"] == "0.01434"
    # cost 0.1604 / 0.0031 - 1 = 50.7419354... -> 50.741935; calls 8 / 2 - 1 = 3
    assert (support["cost_growth"], support["usage_growth"], support["cost_grows_faster"]) == (
        "50.741935",
        "3",
        True,
    )
    other = rows[("",)]
    # 3 calls on each day: no spread of calls, no slope
    assert (other["value"], other["days"]) == (None, 2)
    # 0.03445 (A6 A7 A8 B4 B5 G1) vs 0.1103 (S3 S4): 0.03445 / 0.1103 - 1 = -0.6876699...
    assert (other["cost_growth"], other["usage_growth"], other["cost_grows_faster"]) == (
        "-0.68767",
        "2",
        False,
    )


def test_an_unknown_metric_names_the_metric(tenants):
    with pytest.raises(AnalyticsQueryInvalid) as error:
        answer("profit")
    assert error.value.field == "metric"


def test_a_metric_refuses_a_dimension_it_does_not_group_by(tenants):
    with pytest.raises(AnalyticsQueryInvalid) as error:
        answer("marginal_cost", group_by=("colour",))
    assert error.value.field == "group_by"


def test_an_empty_period_has_no_rows(tenants):
    assert answer("cost", period="2026-08")["rows"] == []
    assert answer("workflow_depth", period="2026-08")["rows"] == []


# --- rounding and the arithmetic helpers --------------------------------------------------


def test_ratios_round_half_up_to_six_places_and_per_call_to_twelve():
    # 1 / 2,000,000 = 0.0000005 exactly: half up gives 0.000001 (half even would give 0)
    assert ratio(1, 2_000_000) == D("0.000001")
    assert ratio(2, 3) == D("0.666667")
    assert ratio(0, 5) == D(0)
    # 1 / 2e12 = 5e-13: half up to 12 places gives 1e-12
    assert per(1, 2 * 10**12) == D("1e-12")
    assert per(D("0.19485"), 14) == D("0.013917857143")


def test_a_zero_denominator_is_null():
    assert ratio(5, 0) is None
    assert per(D(5), 0) is None
    assert growth(5, 0) is None
    assert growth(15, 10) == D("0.5")


def test_slope_is_the_least_squares_slope():
    # x mean 2, y mean 2: covariance (-1)(-1) + 0 + (1)(0) = 1, variance 2: slope 0.5
    assert slope([(1, D(1)), (2, D(3)), (3, D(2))]) == D("0.5")
    # y = 0.002 x exactly
    assert slope([(10, D("0.02")), (20, D("0.04")), (40, D("0.08"))]) == D("0.002")
    assert slope([(5, D(1))]) is None  # one point
    assert slope([(5, D(1)), (5, D(2))]) is None  # no spread of calls


# --- the query parameters -----------------------------------------------------------------


def test_periods_parse_as_months_or_ranges_of_days():
    month = cost_period_parse("2026-10")
    assert (month.start, month.end, month.label) == (
        date(2026, 10, 1),
        date(2026, 11, 1),
        "2026-10",
    )
    january = cost_period_parse("2026-01").previous()
    assert (january.start, january.end, january.label) == (
        date(2025, 12, 1),
        date(2026, 1, 1),
        "2025-12",
    )
    days = cost_period_parse("2026-10-05..2026-10-12")
    assert (days.start, days.end, days.label) == (
        date(2026, 10, 5),
        date(2026, 10, 12),
        "2026-10-05..2026-10-12",
    )
    assert (days.previous().start, days.previous().end) == (date(2026, 9, 28), date(2026, 10, 5))
    # a whole month written as days is that month
    assert cost_period_parse("2026-02-01..2026-03-01").label == "2026-02"


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "2026",
        "2026-13",
        "2026/10",
        "2026-1",
        "26-10-01",
        "2026-10-12..2026-10-05",
        "2026-10-05..2026-10-05",
        "2026-10-05..",
        "2025-01-01..2026-01-03",  # 367 days
    ],
)
def test_a_bad_period_names_the_period(text):
    with pytest.raises(AnalyticsQueryInvalid) as error:
        cost_period_parse(text)
    assert error.value.field == "period"


def test_a_year_of_days_is_a_period():
    assert cost_period_parse("2024-01-01..2025-01-01").days()[-1] == date(2024, 12, 31)


def test_group_by_parses_a_comma_list():
    assert group_by_parse("feature, model") == ("feature", "model")
    assert group_by_parse("") == ()
    assert group_by_parse(None) == ()


@pytest.mark.parametrize("text", ["colour", "feature,feature", "tenant,day"])
def test_a_bad_group_by_names_group_by(text):
    with pytest.raises(AnalyticsQueryInvalid) as error:
        group_by_parse(text)
    assert error.value.field == "group_by"
