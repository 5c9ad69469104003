"""Monthly partitions of the event table on PostgreSQL (a no-op elsewhere).

Each month of ``timestamp`` lives in ``metering_event_pYYYY_MM``; a DEFAULT partition catches
anything else so an insert never fails for want of a partition. Ingestion ensures the months of
each batch exist before writing (one cached set lookup per batch), and a daily beat task creates
the coming months ahead of time. Old months can then be detached and archived whole.
"""

from datetime import UTC, datetime

from django.db import connection, transaction

_known: set[tuple[int, int]] = set()


def partition_name(year: int, month: int) -> str:
    return f"metering_event_p{year:04d}_{month:02d}"


def _next(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _existing() -> set[tuple[int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'metering_event'"
        )
        names = [name for (name,) in cursor.fetchall()]
    months = set()
    for name in names:
        suffix = name.removeprefix("metering_event_p")
        if suffix != name and "_" in suffix:
            year, month = suffix.split("_")
            months.add((int(year), int(month)))
    return months


@transaction.atomic  # the advisory lock and the DETACH ... ATTACH hold only inside a transaction
def _create(year: int, month: int) -> None:
    """Create one month, moving any rows the DEFAULT partition already holds for it."""
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(*_next(year, month), 1, tzinfo=UTC)
    name = partition_name(year, month)
    with connection.cursor() as cursor:
        # A transaction-level advisory lock serialises concurrent creators of the same month.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [name])
        cursor.execute("SELECT to_regclass(%s)", [name])
        if cursor.fetchone()[0] is not None:
            return
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM metering_event_default "
            'WHERE "timestamp" >= %s AND "timestamp" < %s)',
            [start, end],
        )
        stranded = cursor.fetchone()[0]
        if stranded:
            cursor.execute("ALTER TABLE metering_event DETACH PARTITION metering_event_default")
        cursor.execute(
            f"CREATE TABLE {name} PARTITION OF metering_event FOR VALUES FROM (%s) TO (%s)",
            [start, end],
        )
        if stranded:
            cursor.execute(
                f"WITH moved AS (DELETE FROM metering_event_default "
                f'WHERE "timestamp" >= %s AND "timestamp" < %s RETURNING *) '
                f"INSERT INTO {name} SELECT * FROM moved",
                [start, end],
            )
            cursor.execute(
                "ALTER TABLE metering_event ATTACH PARTITION metering_event_default DEFAULT"
            )


def event_partitions_ensure(*, months: set[tuple[int, int]]) -> None:
    """Make sure a partition exists for each (year, month). Cheap when they already do."""
    if connection.vendor != "postgresql" or months <= _known:
        return
    found = _existing()
    for year, month in sorted(months - found):
        _create(year, month)
        found.add((year, month))
    # Remember only committed partitions: a rolled-back batch takes its CREATE TABLE with it,
    # and a stale entry would send that month to the DEFAULT partition for good.
    transaction.on_commit(lambda: _known.update(found))


def event_partitions_ahead(*, now: datetime, months_ahead: int = 2) -> list[str]:
    """Ensure this month and the next ``months_ahead``; returns their partition names."""
    wanted = [(now.year, now.month)]
    for _ in range(months_ahead):
        wanted.append(_next(*wanted[-1]))
    event_partitions_ensure(months=set(wanted))
    return [partition_name(*m) for m in wanted]
