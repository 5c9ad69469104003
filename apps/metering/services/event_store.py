"""The event store's write side: append a batch once per (tenant, event id).

This is the interface DESIGN.md names (append batch, aggregate range, iterate raw). Rows are
plain tuples in ``STORED_COLUMNS`` order; no ORM object is built per event.

PostgreSQL: COPY the batch into a per-connection temporary staging table, then one statement
inserts the dedupe keys with ``ON CONFLICT DO NOTHING`` and the events whose key was new. The
unique key, not a prior read, decides who wins a concurrent send. SQLite: the IMMEDIATE
transaction holds the database's single write lock, so reading the existing keys and inserting
the rest cannot race; the primary key still backs it.
"""

import weakref
from collections.abc import Sequence
from typing import Any

from django.db import connection, transaction

from apps.metering.services.event_schema import ATTRIBUTE_COLUMNS

STORED_COLUMNS = (
    "tenant_id",
    "timestamp",
    "event_id",
    "type",
    "received_at",
    *ATTRIBUTE_COLUMNS,
    "properties",
    "backfill",
)
# A staged row is (index in the request, payload hash, *STORED_COLUMNS values).
StagedRow = tuple[Any, ...]

_quoted = ", ".join(f'"{c}"' for c in STORED_COLUMNS)
_stage_ready: "weakref.WeakSet[Any]" = weakref.WeakSet()
_stage_dirty: "weakref.WeakSet[Any]" = weakref.WeakSet()  # staged rows not yet committed


_PG_STAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS percall_ingest_stage (
    idx integer NOT NULL, payload_hash text NOT NULL, LIKE metering_event
) ON COMMIT DELETE ROWS
"""
_PG_APPEND = f"""
WITH new_keys AS (
    INSERT INTO metering_event_key (tenant_id, event_id, payload_hash, "timestamp")
    SELECT tenant_id, event_id, payload_hash, "timestamp" FROM percall_ingest_stage
    ORDER BY tenant_id, event_id  -- one global order: overlapping batches cannot deadlock
    ON CONFLICT DO NOTHING
    RETURNING tenant_id, event_id
), stored AS (
    INSERT INTO metering_event ({_quoted})
    SELECT {", ".join(f's."{c}"' for c in STORED_COLUMNS)}
    FROM percall_ingest_stage s JOIN new_keys k USING (tenant_id, event_id)
)
SELECT s.idx FROM percall_ingest_stage s
WHERE NOT EXISTS (
    SELECT 1 FROM new_keys k WHERE k.tenant_id = s.tenant_id AND k.event_id = s.event_id
)
"""
_PG_EXISTING = """
SELECT s.idx, k.payload_hash FROM percall_ingest_stage s
JOIN metering_event_key k USING (tenant_id, event_id)
WHERE s.idx = ANY(%s)
"""


def _append_postgresql(rows: Sequence[StagedRow]) -> dict[int, str]:
    with connection.cursor() as cursor:
        raw = connection.connection
        if raw not in _stage_ready:
            cursor.execute(_PG_STAGE)
            # Only a committed CREATE survives: a rolled-back batch takes the table with it.
            transaction.on_commit(lambda: _stage_ready.add(raw))
        if raw in _stage_dirty:
            # ON COMMIT DELETE ROWS empties the stage only at commit: when the caller's
            # transaction wraps several batches, the previous batch's rows are still there.
            cursor.execute("DELETE FROM percall_ingest_stage")
        _stage_dirty.add(raw)
        transaction.on_commit(lambda: _stage_dirty.discard(raw))
        with cursor.copy(
            f"COPY percall_ingest_stage (idx, payload_hash, {_quoted}) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(_PG_APPEND)
        missed = [idx for (idx,) in cursor.fetchall()]
        if not missed:
            return {}
        cursor.execute(_PG_EXISTING, [missed])
        return dict(cursor.fetchall())


def _append_sqlite(rows: Sequence[StagedRow]) -> dict[int, str]:
    ops = connection.ops
    existing: dict[int, str] = {}
    fresh: list[StagedRow] = []
    by_tenant: dict[Any, list[StagedRow]] = {}
    for row in rows:
        by_tenant.setdefault(row[2], []).append(row)
    with connection.cursor() as cursor:
        for tenant_id, tenant_rows in by_tenant.items():
            for start in range(0, len(tenant_rows), 500):
                chunk = tenant_rows[start : start + 500]
                marks = ", ".join("%s" for _ in chunk)
                cursor.execute(
                    "SELECT event_id, payload_hash FROM metering_event_key "
                    f"WHERE tenant_id = %s AND event_id IN ({marks})",
                    [tenant_id.hex, *(row[4] for row in chunk)],
                )
                known = dict(cursor.fetchall())
                for row in chunk:
                    if row[4] in known:
                        existing[row[0]] = known[row[4]]
                    else:
                        fresh.append(row)
        if not fresh:
            return existing
        stamps = [ops.adapt_datetimefield_value(row[3]) for row in fresh]
        received = ops.adapt_datetimefield_value(fresh[0][6])  # one receive time per batch
        cursor.executemany(
            "INSERT INTO metering_event_key (tenant_id, event_id, payload_hash, timestamp) "
            "VALUES (%s, %s, %s, %s)",
            [(r[2].hex, r[4], r[1], stamp) for r, stamp in zip(fresh, stamps, strict=True)],
        )
        placeholders = ", ".join("%s" for _ in STORED_COLUMNS)
        cursor.executemany(
            f"INSERT INTO metering_event ({_quoted}) VALUES ({placeholders})",
            [_sqlite_values(r, s, received) for r, s in zip(fresh, stamps, strict=True)],
        )
    return existing


def _sqlite_values(row: StagedRow, stamp: str | None, received: str | None) -> tuple[Any, ...]:
    values = list(row[2:])
    values[0] = values[0].hex  # SQLite stores UUIDs as 32 hex digits
    values[1] = stamp
    values[4] = received
    return tuple(values)


def event_rows_append(*, rows: Sequence[StagedRow]) -> dict[int, str]:
    """Store each row whose (tenant, event id) is new. Rows must be unique on that pair.

    Returns, for every row that was not stored because its key already existed, its index
    mapped to the stored payload hash, so the caller can tell duplicates from conflicts.
    Must run inside the caller's transaction: keys and events commit or vanish together, so a
    failed insert leaves nothing behind and the retry stores the event.
    """
    if not rows:
        return {}
    if connection.vendor == "postgresql":
        return _append_postgresql(rows)
    return _append_sqlite(rows)
