"""Retention of raw events: the deletion side. Which ranges are billed is billing's to say
(``apps.billing.services.retention``); this module deletes, within such a range, the events
whose hour is rolled up, and marks those hours purged so that nothing rebuilds them from the
events left.

An event of ``window`` is deleted when:
- its hour is not waiting in the rollup queue (``metering_rollup_pending``), and
- its hour was rebuilt after the event arrived (``metering_rollup_hour.rolled_up_at`` at or
  after its ``received_at``), and
- it arrived no later than ``window.billed_as_of``, the last time an invoice read the range.

Batches of ``batch_size`` rows, each in its own short transaction: a crash leaves whole
batches done and the rest for the next run, a second run finds nothing left to delete, and two
runs at once delete disjoint rows (on PostgreSQL each skips the rows the other has locked).
The dedupe keys (``metering_event_key``) are kept: a resent purged event is still a duplicate,
never stored and billed again.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from django.db import OperationalError, ProgrammingError, connection, transaction

from apps.core.periods import month_add, utc_months
from apps.metering.services.partitions import partition_name

logger = logging.getLogger(__name__)

_HOUR_OF = {
    "postgresql": """date_bin('1 hour', ev."timestamp", TIMESTAMPTZ '2000-01-01 00:00:00+00')""",
    "sqlite": """substr(ev."timestamp", 1, 13) || ':00:00'""",
}
# The rows of one batch: the oldest first, so a run that stops early resumes where it was.
_CANDIDATES = """
SELECT ev.tenant_id, ev."timestamp", ev.event_id FROM metering_event ev
JOIN metering_rollup_hour h ON h.tenant_id = ev.tenant_id AND h.hour = {hour_of}
WHERE ev.tenant_id = %s AND ev."timestamp" >= %s AND ev."timestamp" < %s
  AND ev.received_at <= %s AND ev.received_at <= h.rolled_up_at
  AND NOT EXISTS (
    SELECT 1 FROM metering_rollup_pending p WHERE p.tenant_id = ev.tenant_id AND p.hour = h.hour
  )
ORDER BY ev."timestamp", ev.event_id
LIMIT %s{lock}
"""
# PostgreSQL: concurrent runs take disjoint rows instead of waiting on each other's (and so
# can never deadlock); SQLite's write transaction is already the only one.
_SKIP_LOCKED = {"postgresql": " FOR UPDATE OF ev SKIP LOCKED", "sqlite": ""}
_DELETE = """
DELETE FROM metering_event WHERE (tenant_id, "timestamp", event_id) IN ({candidates})
RETURNING "timestamp"
"""


# What is left to look at: per tenant and UTC month ('YYYY-MM'), the earliest arrival among
# the events older than the cutoff. After the first runs those are only the kept ones (late,
# unbilled, still queued), which every run counts anyway.
_MONTH_OF = {
    "postgresql": """to_char(ev."timestamp" AT TIME ZONE 'UTC', 'YYYY-MM')""",
    "sqlite": """substr(ev."timestamp", 1, 7)""",
}
_LEFT = """
SELECT ev.tenant_id, {month_of}, MIN(ev.received_at) FROM metering_event ev
WHERE ev."timestamp" < %s GROUP BY 1, 2
"""


@dataclass(frozen=True)
class PurgeWindow:
    """A range of one tenant's raw events that billing has settled: events received by
    ``billed_as_of`` were on the invoice (or on an adjustment of it)."""

    tenant_id: UUID
    start: datetime
    end: datetime
    billed_as_of: datetime


def _aware(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite hands back its own text
        value = datetime.fromisoformat(value).replace(tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _hour(value: Any) -> datetime:
    return _aware(value).replace(minute=0, second=0, microsecond=0)


def event_windows_left(*, windows: Sequence[PurgeWindow], before: datetime) -> list[PurgeWindow]:
    """Of ``windows`` (all ending by ``before``), those that may still hold an event to delete:
    a UTC month they overlap has an event older than ``before`` that arrived by their
    ``billed_as_of``. One grouped query, so a run over purged history skips it without a query
    per window; a window kept here may still find nothing (its events are in a queued hour, or
    in the part of the month outside it), which its delete then says."""
    if not windows:
        return []
    vendor = "postgresql" if connection.vendor == "postgresql" else "sqlite"
    param = before if vendor == "postgresql" else connection.ops.adapt_datetimefield_value(before)
    with connection.cursor() as cursor:
        cursor.execute(_LEFT.format(month_of=_MONTH_OF[vendor]), [param])
        earliest = {
            (tenant if isinstance(tenant, UUID) else UUID(tenant), month): _aware(arrived)
            for tenant, month, arrived in cursor.fetchall()
        }
    return [
        w
        for w in windows
        if any(
            (at := earliest.get((w.tenant_id, month))) is not None and at <= w.billed_as_of
            for month in (f"{m:%Y-%m}" for m in utc_months(w.start, w.end))
        )
    ]


def _params(window: PurgeWindow, limit: int) -> list[Any]:
    values: list[Any] = [window.start, window.end, window.billed_as_of]
    if connection.vendor == "postgresql":
        return [window.tenant_id, *values, limit]
    adapt = connection.ops.adapt_datetimefield_value
    return [window.tenant_id.hex, *(adapt(v) for v in values), limit]


def _hours_mark_purged(
    cursor: Any, tenant_id: UUID, hours: Sequence[datetime], now: datetime
) -> None:
    """Mark the hours whose events were deleted, in the deleting transaction."""
    if connection.vendor == "postgresql":
        cursor.execute(
            "UPDATE metering_rollup_hour SET purged_at = %s WHERE tenant_id = %s "
            "AND hour = ANY(%s::timestamptz[]) AND purged_at IS NULL",
            [now, tenant_id, list(hours)],
        )
        return
    adapt = connection.ops.adapt_datetimefield_value
    cursor.executemany(
        "UPDATE metering_rollup_hour SET purged_at = %s WHERE tenant_id = %s AND hour = %s "
        "AND purged_at IS NULL",
        [(adapt(now), tenant_id.hex, adapt(h)) for h in hours],
    )


def event_rows_purge(
    *,
    window: PurgeWindow,
    now: datetime,
    batch_size: int = 5000,
    max_batches: int = 200,
    dry_run: bool = False,
    still_billed: Callable[[], bool] | None = None,
) -> int:
    """Delete the rolled-up events of ``window`` received by ``window.billed_as_of``, at most
    ``batch_size`` rows per transaction; returns how many were deleted (with ``dry_run``, how
    many would be, deleting nothing). Safe to run twice or concurrently.

    ``still_billed`` is called first in each batch's transaction, before anything is deleted:
    billing takes its locks there and reads the window again, and when it answers False the
    window is left as it is (the range was reopened since it was computed)."""
    vendor = "postgresql" if connection.vendor == "postgresql" else "sqlite"
    if dry_run:
        with connection.cursor() as cursor:
            counted = _CANDIDATES.format(hour_of=_HOUR_OF[vendor], lock="")
            cursor.execute(f"SELECT COUNT(*) FROM ({counted}) AS c", _params(window, 2**62))
            return int(cursor.fetchone()[0])
    candidates = _CANDIDATES.format(hour_of=_HOUR_OF[vendor], lock=_SKIP_LOCKED[vendor])
    deleted = 0
    for _ in range(max_batches):
        with transaction.atomic(), connection.cursor() as cursor:
            if still_billed is not None and not still_billed():
                break
            cursor.execute(_DELETE.format(candidates=candidates), _params(window, batch_size))
            stamps = [stamp for (stamp,) in cursor.fetchall()]
            if stamps:
                _hours_mark_purged(cursor, window.tenant_id, sorted(set(map(_hour, stamps))), now)
        deleted += len(stamps)
        # A short batch is the end of the window (or, with a concurrent run, rows it holds:
        # that run goes on, and whatever is left waits for the next run).
        if len(stamps) < batch_size:
            break
    return deleted


def events_older_count(*, before: datetime) -> int:
    """Raw events with a timestamp before ``before`` (on PostgreSQL, only the partitions that
    can hold them are read)."""
    from apps.metering.models import Event

    return Event.objects.filter(timestamp__lt=before).count()


_UNDEFINED_TABLE = "42P01"  # the partition is gone


def event_partitions_drop_empty(*, before: datetime) -> list[str]:
    """Drop the monthly partitions (PostgreSQL) that end on or before ``before`` and hold no
    row any more: an emptied month's table and indexes go back to the operating system at once,
    where deleted rows only leave space for reuse. Each drop waits at most 2 s for its lock
    (it briefly locks the whole event table) and is otherwise left for the next run. A month
    that receives a backfilled event later is created again by ingestion."""
    if connection.vendor != "postgresql":
        return []
    from apps.metering.services.partitions import _existing, _known

    dropped = []
    for year, month in sorted(_existing()):
        end = datetime.combine(month_add(date(year, month, 1), 1), time(), tzinfo=UTC)
        if end > before:
            continue
        name = partition_name(year, month)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
                cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {name})")
                if cursor.fetchone()[0]:
                    continue
                cursor.execute(f"DROP TABLE {name}")
        except OperationalError:
            logger.warning("retention: partition %s is busy; dropping it next run", name)
            continue
        except ProgrammingError as exc:
            # A purge running at the same time listed the month too and dropped it first.
            if getattr(exc.__cause__, "sqlstate", None) != _UNDEFINED_TABLE:
                raise
            _known.discard((year, month))
            continue
        _known.discard((year, month))
        dropped.append(name)
    return dropped


def purge_cutoff(*, now: datetime, retention_days: int) -> datetime | None:
    """Events before this instant may be purged; None when retention is off (0 days)."""
    if retention_days <= 0:
        return None
    return now - timedelta(days=retention_days)
