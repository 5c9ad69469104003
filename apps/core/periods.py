"""Billing periods: half-open ``[start, end)`` spans of calendar months or years in a timezone.

The month arithmetic of the whole product lives here. Boundaries are local midnights of the
first day, turned into aware UTC instants through the IANA zone, so a period is right across
daylight-saving changes (a March in Europe/Paris lasts 743 hours, not 744). Days are counted
by local calendar date, never by dividing hours.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_TICK = timedelta(microseconds=1)

# The years a period named in a call may fall in: its neighbours (the previous period that a
# comparison reads, the month after that ends it) must be dates too, so the first and last
# years of ``date`` are out.
PERIOD_YEARS = range(2, 9999)
PERIOD_YEARS_TEXT = f"years {PERIOD_YEARS.start} to {PERIOD_YEARS.stop - 1}"


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    """``[start, end)``, both aware UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a billing period needs aware datetimes")
        if self.end <= self.start:
            raise ValueError(f"period end {self.end} is not after its start {self.start}")

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def month_add(day: date, months: int) -> date:
    """The first of the month ``months`` after ``day``'s month (negative: before)."""
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def utc_months(start: datetime, end: datetime) -> list[date]:
    """The first days of the UTC months that ``[start, end)`` overlaps, oldest first."""
    if end <= start:
        return []
    month = start.astimezone(UTC).date().replace(day=1)
    months = []
    while datetime.combine(month, time(), tzinfo=UTC) < end:
        months.append(month)
        month = month_add(month, 1)
    return months


def hour_floor(moment: datetime) -> datetime:
    """The start of the UTC hour holding ``moment``. Rollups and purges are kept per UTC hour,
    so a period starting on a half hour (a +05:30 zone's midnight is hh:30 UTC) has its first
    events in the hour that begins before it."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant (UTC) local midnight begins on ``day`` in ``zone``. Where a clock change
    skips midnight, the first instant of that day."""
    wall = datetime.combine(day, time(0), tzinfo=zone)
    instant = wall.astimezone(UTC)
    # A wall time in a gap does not exist: fold forward to the first real instant of the day.
    if instant.astimezone(zone).date() != day:
        instant = datetime.combine(day, time(1), tzinfo=zone).astimezone(UTC)
    return instant


def calendar_period(at: datetime, *, timezone_name: str, interval: str) -> BillingPeriod:
    """The calendar month (``interval`` 'month') or year ('year') in the zone containing
    ``at``."""
    zone = ZoneInfo(timezone_name)
    local = at.astimezone(zone).date()
    if interval == "month":
        first = local.replace(day=1)
        following = month_add(first, 1)
    elif interval == "year":
        first = date(local.year, 1, 1)
        following = date(local.year + 1, 1, 1)
    else:
        raise ValueError(f"interval {interval!r} is not month or year")
    return BillingPeriod(local_midnight(first, zone), local_midnight(following, zone))


def period_days(period: BillingPeriod, *, timezone_name: str) -> int:
    """Local calendar days the period spans (a day partly inside counts)."""
    zone = ZoneInfo(timezone_name)
    first = period.start.astimezone(zone).date()
    last = (period.end - _TICK).astimezone(zone).date()
    return (last - first).days + 1


def subscription_periods(
    *, started_at: datetime, until: datetime, timezone_name: str, interval: str
) -> list[BillingPeriod]:
    """The periods of a subscription from ``started_at`` that begin before ``until``: the first
    from ``started_at`` to the end of its calendar period, then whole calendar periods."""
    periods: list[BillingPeriod] = []
    start = started_at
    while start < until:
        calendar = calendar_period(start, timezone_name=timezone_name, interval=interval)
        periods.append(BillingPeriod(start, calendar.end))
        start = calendar.end
    return periods
