"""Fresh planner statistics for the event partitions a rollup is about to scan (PostgreSQL).

The rollup joins each claimed (tenant, hour) to its events. With statistics from before a
bulk load (a backfill, a catch-up after an outage), the planner believes a partition holds a
handful of rows, hashes the events instead of the claimed hours, and a rollup of a million
events of one tenant took minutes instead of seconds. Autovacuum analyzes such a partition
eventually; a rollup right after the load cannot wait for it, so it analyzes first when the
partition changed a lot since its last analysis (an ANALYZE samples 30,000 rows whatever the
size, so it costs well under a second)."""

from datetime import datetime, timedelta

from django.db import connection

from apps.core.periods import utc_months
from apps.metering.services.partitions import partition_name

_TICK = timedelta(microseconds=1)

# Analyze when more rows changed since the last analysis than one in _CHANGED_ONE_IN of the
# rows counted then (and at least _MIN_CHANGED): autovacuum's default analyze threshold is 10 %.
_CHANGED_ONE_IN = 5
_MIN_CHANGED = 10_000


def event_statistics_refresh(*, start: datetime, end: datetime) -> list[str]:
    """ANALYZE the event partitions of ``[start, end]`` whose statistics are stale; returns
    the partitions analyzed. A no-op elsewhere than on PostgreSQL."""
    if connection.vendor != "postgresql":
        return []
    # ``end`` is inclusive here: a microsecond past it counts the month it falls in.
    names = [partition_name(m.year, m.month) for m in utc_months(start, end + _TICK)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
            "WHERE s.relname = ANY(%s) AND s.n_mod_since_analyze >= %s AND "
            "s.n_mod_since_analyze * %s >= GREATEST(c.reltuples, 0)",
            [names, _MIN_CHANGED, _CHANGED_ONE_IN],
        )
        stale = [name for (name,) in cursor.fetchall()]
        for name in stale:  # names from partition_name only, never from input
            cursor.execute(f"ANALYZE {name}")
    return stale
