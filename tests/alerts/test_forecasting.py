"""The pure period forecast: exact on series its models describe, run-rate by hand."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.alerts.forecasting import period_forecast

D = Decimal
WEEK = [D(v) for v in (1, 2, 3, 4, 5, 6, 7)]


def test_constant_series_is_predicted_exactly_with_no_band():
    # given 14 days of 10 in a 30-day period; then 30 * 10 = 300, residuals all zero
    result = period_forecast([D(10)] * 14, days_total=30)
    assert result.method == "holt_winters"
    assert (result.total, result.lower, result.upper) == (D(300), D(300), D(300))
    assert result.actual_to_date == D(140)
    assert result.days_observed == 14


def test_linear_trend_is_predicted_exactly():
    # given x_t = 10 + t for t = 0..13; actual = (10 + 23) * 14 / 2 = 231
    # remaining t = 14..19 are 24..29: (24 + 29) * 6 / 2 = 159; total 231 + 159 = 390
    daily = [D(10 + t) for t in range(14)]
    result = period_forecast(daily, days_total=20)
    assert result.method == "holt_winters"
    assert result.total == D(390)
    assert result.lower == result.upper == D(390)


def test_weekly_pattern_with_two_seasons_is_predicted_exactly():
    # given 1..7 twice (actual 56); the 16 remaining days are 1..7, 1..7, 1, 2 = 28 + 28 + 3
    result = period_forecast(WEEK * 2, days_total=30)
    assert result.method == "holt_winters"
    assert result.total == D(56 + 59)
    assert result.lower == result.upper == result.total


def test_trend_plus_weekly_pattern_is_predicted_exactly():
    # given x_t = 100 + 2t + p(t mod 7) with p = -3..3 (sums to zero), 21 days
    pattern = [-3, -2, -1, 0, 1, 2, 3]
    daily = [D(100 + 2 * t + pattern[t % 7]) for t in range(21)]
    result = period_forecast(daily, days_total=28)
    # remaining t = 21..27: sum(100 + 2t) + sum(p) = 7 * 100 + 2 * (21 + ... + 27) + 0
    #   = 700 + 2 * 168 = 1036; actual = 21 * 100 + 2 * (0 + ... + 20) + 3 * 0 = 2100 + 420
    assert result.total == D(2520 + 1036)


def test_one_season_repeats_the_last_week_with_a_band():
    # given one week 1..7 (actual 28), 23 days to go: 3 weeks (84) + 1 + 2 = 87
    result = period_forecast(WEEK, days_total=30)
    assert result.method == "seasonal_naive"
    assert result.total == D(28 + 87)
    assert result.lower < result.total < result.upper
    assert result.lower >= result.actual_to_date


def test_run_rate_by_hand():
    # given 10, 20, 30 in a 31-day period: mean 20, 28 days to go -> 60 + 560 = 620
    result = period_forecast([D(10), D(20), D(30)], days_total=31)
    assert result.method == "run_rate"
    assert result.total == D(620)
    # residuals -10, 0, 10: sigma^2 = 200 / 3; variance of the 28-day sum
    #   = 200/3 * (28 + 28^2 / 3) = 200/3 * 868/3 = 173600 / 9; sqrt = 138.8844...
    # half-width 1.2816 * 138.8844 = 177.9943 -> band 442.0057 .. 797.9943
    assert abs(result.lower - D("442.0057")) < D("0.001")
    assert abs(result.upper - D("797.9943")) < D("0.001")


def test_no_days_is_zero_with_method_none():
    result = period_forecast([], days_total=31)
    assert (result.total, result.lower, result.upper, result.method) == (0, 0, 0, "none")


def test_history_fits_the_model_but_is_not_counted():
    # given last week's 1..7 as history and this period's first week 1..7: 14 days -> HW
    # actual 28; 23 days to go repeat the pattern: 28 * 3 + 1 + 2 = 87
    result = period_forecast(WEEK, days_total=30, history=WEEK)
    assert result.method == "holt_winters"
    assert result.actual_to_date == D(28)
    assert result.total == D(28 + 87)


def test_projection_never_goes_below_zero_for_non_negative_series():
    # given 13 down to 0 over 14 days (actual 13 * 14 / 2 = 91); the line continues below 0
    daily = [D(13 - t) for t in range(14)]
    result = period_forecast(daily, days_total=20)
    assert result.total == D(91)
    assert result.lower == D(91)


def test_complete_period_is_its_actual():
    result = period_forecast([D(5)] * 3 + [D(7)] * 4, days_total=7)
    assert (result.total, result.lower, result.upper) == (D(43), D(43), D(43))


def test_band_widens_with_the_horizon():
    noisy = [D(v) for v in (10, 12, 9, 11, 13, 8, 10, 11, 9, 12, 10, 14, 9, 10)]
    near = period_forecast(noisy, days_total=16)
    far = period_forecast(noisy, days_total=31)
    assert near.lower < near.total < near.upper
    assert (far.upper - far.total) > (near.upper - near.total)


def test_more_days_than_the_period_is_an_error():
    with pytest.raises(ValueError):
        period_forecast([D(1)] * 5, days_total=4)


_DAY = st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(
    daily=st.lists(_DAY, max_size=31),
    history=st.lists(_DAY, max_size=28),
    extra=st.integers(min_value=0, max_value=31),
)
def test_band_holds_the_forecast_and_never_undercuts_what_happened(daily, history, extra):
    # whatever the days, for non-negative values: actual <= lower <= total <= upper
    result = period_forecast(daily, days_total=len(daily) + extra, history=history)
    actual = sum(daily, D(0))
    assert result.actual_to_date == actual
    assert actual <= result.lower <= result.total <= result.upper
    if extra == 0:  # a complete period is its actual, with no band
        assert result.lower == result.total == result.upper == actual.quantize(D("0.000001"))


@settings(max_examples=60, deadline=None)
@given(
    pattern=st.lists(_DAY, min_size=7, max_size=7),
    weeks=st.integers(min_value=2, max_value=4),
    extra=st.integers(min_value=0, max_value=20),
)
def test_any_pure_weekly_pattern_is_predicted_exactly(pattern, weeks, extra):
    daily = pattern * weeks
    n = len(daily)
    # the remaining days continue the pattern: day t is pattern[t mod 7]
    expected = sum(daily, D(0)) + sum((pattern[t % 7] for t in range(n, n + extra)), D(0))
    result = period_forecast(daily, days_total=n + extra)
    assert result.method == "holt_winters"
    assert abs(result.total - expected) <= D("0.00001")
    assert result.upper - result.lower <= D("0.0001")
