"""The month helpers the rollup and retention share."""

from datetime import UTC, date, datetime, timedelta, timezone

from apps.core.periods import utc_months


def test_the_utc_months_a_half_open_range_overlaps():
    start = datetime(2026, 11, 20, 12, tzinfo=UTC)
    # an end on the first instant of a month leaves that month out
    assert utc_months(start, datetime(2027, 1, 1, tzinfo=UTC)) == [
        date(2026, 11, 1),
        date(2026, 12, 1),
    ]
    # one microsecond into it takes it in
    assert utc_months(start, datetime(2027, 1, 1, microsecond=1, tzinfo=UTC))[-1] == date(
        2027, 1, 1
    )
    assert utc_months(start, start) == []


def test_months_are_read_in_utc_whatever_the_offset():
    # 1 December 01:00 in +02:00 is still 30 November in UTC
    start = datetime(2026, 12, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    assert utc_months(start, datetime(2026, 12, 2, tzinfo=UTC)) == [
        date(2026, 11, 1),
        date(2026, 12, 1),
    ]
