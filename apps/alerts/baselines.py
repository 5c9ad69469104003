"""Robust baselines for hourly figures. Pure Python: Decimal in and out, no Django, no clock.

A figure of one hour is judged against the same figure in comparable hours: the same hour of
the week over the last 4 weeks (traffic has a weekly shape); where a series has too little
history for that, the same hour of the day over the last 6 days; failing that, a rolling
window of the last 24 hours. The centre is the median and the spread the MAD (median
absolute deviation), both insensitive to the odd outlier already in the baseline.

The robust z-score is ``0.6745 * (x - median) / MAD`` (0.6745 makes it comparable to a
normal z-score; Iglewicz and Hoaglin suggest |z| > 3.5 as an outlier). A MAD of zero (a
perfectly flat series) would make any wobble infinite, so the MAD is floored at a share of
the median and at an absolute floor chosen per figure.

``share_shift`` names what moved: the value (a model, a workflow...) whose share of a measure
grew most between the baseline hours and the hour judged.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

ZERO = Decimal(0)
Z_FACTOR = Decimal("0.6745")
MAD_FLOOR_SHARE = Decimal("0.05")  # the MAD is at least 5 % of |median|
WEEKS = 4
MIN_WEEKS = 3  # hour-of-week needs data in at least 3 of the last 4 weeks
DAYS = 6
MIN_DAYS = 3
ROLLING_HOURS = 24
MIN_ROLLING = 6

HOUR_OF_WEEK = "hour_of_week"
HOUR_OF_DAY = "hour_of_day"
ROLLING = "rolling"


@dataclass(frozen=True)
class Baseline:
    """The centre and spread of a figure in the comparable hours."""

    median: Decimal
    mad: Decimal
    method: str
    samples: int


def median(values: Sequence[Decimal]) -> Decimal:
    """The middle value (the mean of the two middle ones for an even count)."""
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def mad(values: Sequence[Decimal]) -> Decimal:
    """The median absolute deviation from the median (unscaled)."""
    centre = median(values)
    return median([abs(v - centre) for v in values])


def baseline_of(values: Sequence[Decimal], *, method: str) -> Baseline:
    """Median and MAD of ``values``, the figure in each comparable hour."""
    return Baseline(median(values), mad(values), method, len(values))


def robust_z(value: Decimal, baseline: Baseline, *, floor: Decimal) -> Decimal:
    """``0.6745 * (value - median) / MAD`` with the MAD floored at 5 % of |median| and at
    ``floor`` (in the figure's units, > 0), so a flat series with a tiny wobble scores low."""
    spread = max(baseline.mad, MAD_FLOOR_SHARE * abs(baseline.median), floor)
    return Z_FACTOR * (value - baseline.median) / spread


def comparable_hours(hour: datetime) -> dict[str, list[datetime]]:
    """Every hour each method may compare ``hour`` with, newest first."""
    return {
        HOUR_OF_WEEK: [hour - timedelta(weeks=k) for k in range(1, WEEKS + 1)],
        HOUR_OF_DAY: [hour - timedelta(days=k) for k in range(1, DAYS + 1)],
        ROLLING: [hour - timedelta(hours=k) for k in range(1, ROLLING_HOURS + 1)],
    }


def baseline_hours(hour: datetime, *, present: Collection[datetime]) -> tuple[str, list[datetime]]:
    """The method and hours to judge ``hour`` by, given the hours a series has data in.

    History is measured by the series' own data: hour-of-week when it has data in at least 3
    of the same hours of the last 4 weeks, else hour-of-day when at least 3 of the last 6
    days, else the last 24 hours when at least 6 of them; otherwise ``("", [])``, too little
    to judge. Within the chosen method every comparable hour is returned, those without data
    too (a count such as calls is 0 there; a ratio has no value)."""
    minimum = {HOUR_OF_WEEK: MIN_WEEKS, HOUR_OF_DAY: MIN_DAYS, ROLLING: MIN_ROLLING}
    for method, hours in comparable_hours(hour).items():
        if sum(1 for h in hours if h in present) >= minimum[method]:
            return method, hours
    return "", []


def needed_hours(hours: Collection[datetime]) -> set[datetime]:
    """The hours judged plus every hour any method may compare them with: what to read."""
    out = set(hours)
    for hour in hours:
        for compared in comparable_hours(hour).values():
            out.update(compared)
    return out


def share_shift(now: dict[str, Decimal], before: dict[str, Decimal]) -> tuple[str, Decimal]:
    """The value whose share of a measure grew most from ``before`` to ``now`` and by how
    much (a fraction, 0 to 1); ('', 0) when either side has none of it. '' (calls without
    the dimension) is never a cause."""
    total_now, total_before = sum(now.values(), ZERO), sum(before.values(), ZERO)
    best = ("", ZERO)
    if total_now <= 0 or total_before <= 0:
        return best
    for value, amount in now.items():
        shift = amount / total_now - before.get(value, ZERO) / total_before
        if value and shift > best[1]:
            best = (value, shift)
    return best
