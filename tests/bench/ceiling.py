"""The ceiling HTTP ingestion is compared against: the same rows written raw by one process.

PostgreSQL: one psycopg ``COPY ... FROM STDIN`` with ``write_row`` into a plain table shaped like
``metering_event`` (no partitions, no indexes), committed once. SQLite: ``executemany`` into such
a table. The table is dropped afterwards. Rows in ``STORED_COLUMNS`` order, as ingestion stores.
"""

import sqlite3
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg

from apps.metering.services.event_store import STORED_COLUMNS
from tests.bench.scratch import ScratchDatabase, raw_connect

SCRATCH_TABLE = "bench_copy_scratch"
QUOTED_COLUMNS = ", ".join(f'"{c}"' for c in STORED_COLUMNS)


def sqlite_time(value: datetime) -> str:
    """A datetime as Django stores it in SQLite: naive UTC text."""
    return str(value.astimezone(UTC).replace(tzinfo=None))


def sqlite_rows(rows: Iterable[tuple]) -> Iterator[tuple]:
    """Rows adapted for sqlite3: UUIDs as hex, datetimes as text, decimals as text."""
    for row in rows:
        values: list[Any] = list(row)
        values[0] = values[0].hex
        values[1] = sqlite_time(values[1])
        values[4] = sqlite_time(values[4])
        yield tuple(str(v) if v.__class__.__name__ == "Decimal" else v for v in values)


def _copy_postgresql(conn: psycopg.Connection, rows: list[tuple]) -> float:
    conn.execute(f"CREATE TABLE {SCRATCH_TABLE} (LIKE metering_event)")
    conn.commit()
    try:
        began = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY {SCRATCH_TABLE} ({QUOTED_COLUMNS}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - began
    finally:
        conn.execute(f"DROP TABLE {SCRATCH_TABLE}")
        conn.commit()


def _copy_sqlite(conn: sqlite3.Connection, rows: list[tuple]) -> float:
    conn.execute(f"CREATE TABLE {SCRATCH_TABLE} AS SELECT * FROM metering_event WHERE 0")
    conn.commit()
    marks = ", ".join("?" for _ in STORED_COLUMNS)
    try:
        began = time.perf_counter()
        conn.executemany(
            f"INSERT INTO {SCRATCH_TABLE} ({QUOTED_COLUMNS}) VALUES ({marks})", sqlite_rows(rows)
        )
        conn.commit()
        return time.perf_counter() - began
    finally:
        conn.execute(f"DROP TABLE {SCRATCH_TABLE}")
        conn.commit()


def copy_ceiling_measure(*, scratch: ScratchDatabase, rows: list[tuple]) -> float:
    """Seconds to write ``rows`` raw into a scratch table and commit."""
    conn = raw_connect(scratch)
    try:
        if isinstance(conn, psycopg.Connection):
            return _copy_postgresql(conn, rows)
        return _copy_sqlite(conn, rows)
    finally:
        conn.close()
