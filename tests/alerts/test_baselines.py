"""Median, MAD, robust z and the choice of comparable hours, by hand."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.alerts.baselines import (
    Baseline,
    baseline_hours,
    baseline_of,
    mad,
    median,
    needed_hours,
    robust_z,
    share_shift,
)

D = Decimal
HOUR = datetime(2026, 11, 30, 14, tzinfo=UTC)


def test_median_odd_and_even():
    assert median([D(5), D(1), D(3)]) == D(3)
    # (2 + 3) / 2
    assert median([D(4), D(1), D(3), D(2)]) == D("2.5")
    with pytest.raises(ValueError):
        median([])


def test_mad_by_hand():
    # values 1, 2, 3, 4, 100: median 3; deviations 2, 1, 0, 1, 97 -> median 1
    assert mad([D(1), D(2), D(3), D(4), D(100)]) == D(1)
    baseline = baseline_of([D(1), D(2), D(3), D(4), D(100)], method="rolling")
    assert (baseline.median, baseline.mad, baseline.samples) == (D(3), D(1), 5)


def test_robust_z_by_hand():
    # median 100, MAD 10: 0.6745 * (150 - 100) / 10 = 3.3725
    baseline = Baseline(D(100), D(10), "hour_of_week", 4)
    assert robust_z(D(150), baseline, floor=D(1)) == D("3.3725")


def test_flat_series_with_a_tiny_wobble_scores_low():
    # MAD 0 is floored at 5 % of the median 100 = 5: 0.6745 * (101 - 100) / 5 = 0.1349
    baseline = baseline_of([D(100)] * 4, method="hour_of_week")
    assert baseline.mad == 0
    assert robust_z(D(101), baseline, floor=D("0.01")) == D("0.1349")
    # an all-zero baseline uses the absolute floor: 0.6745 * (2 - 0) / 1 = 1.349
    zero = baseline_of([D(0)] * 4, method="hour_of_week")
    assert robust_z(D(2), zero, floor=D(1)) == D("1.349")


def test_hour_of_week_with_three_weeks_of_data():
    weeks = [HOUR - timedelta(weeks=k) for k in (1, 2, 3)]
    method, hours = baseline_hours(HOUR, present=set(weeks))
    assert method == "hour_of_week"
    assert hours == [HOUR - timedelta(weeks=k) for k in (1, 2, 3, 4)]


def test_short_history_falls_back_to_hour_of_day_then_rolling():
    days = {HOUR - timedelta(days=k) for k in (1, 2, 3)}
    method, hours = baseline_hours(HOUR, present=days | {HOUR - timedelta(weeks=1)})
    assert method == "hour_of_day"
    assert len(hours) == 6 and hours[0] == HOUR - timedelta(days=1)

    recent = {HOUR - timedelta(hours=k) for k in range(1, 7)}
    method, hours = baseline_hours(HOUR, present=recent)
    assert method == "rolling"
    assert hours == [HOUR - timedelta(hours=k) for k in range(1, 25)]


def test_too_little_history_is_not_judged():
    assert baseline_hours(HOUR, present={HOUR - timedelta(hours=1)}) == ("", [])


def test_needed_hours_cover_every_method():
    # the hour itself, 4 weeks, 6 days and 24 hours back (the 24th hour back is day 1)
    hours = needed_hours([HOUR])
    assert len(hours) == 1 + 4 + 6 + 24 - 1
    assert HOUR - timedelta(weeks=4) in hours


def test_share_shift_by_hand():
    # before: mini 90 of 100 (0.9), big 10 (0.1); now: mini 20 of 100 (0.2), big 80 (0.8)
    # big's share grew 0.8 - 0.1 = 0.7; mini's fell
    before = {"mini": D(90), "big": D(10)}
    assert share_shift({"mini": D(20), "big": D(80)}, before) == ("big", D("0.7"))
    # a value new in the hour: all of its share is the shift; '' is never a cause
    assert share_shift({"": D(50), "v2": D(50)}, {"": D(10)}) == ("v2", D("0.5"))
    # nothing on one side: nothing to compare
    assert share_shift({"big": D(1)}, {}) == ("", D(0))
    assert share_shift({}, before) == ("", D(0))
