"""Rollup throughput: load N events straight into the event store, then time only the rollup.

The load bypasses HTTP (it is not what is measured) and is quick: a pool of ``POOL`` generated
events (tenants by weight, correlated routes) is replicated to N rows with fresh ids and random
timestamps, server-side on PostgreSQL (``INSERT ... SELECT`` over ``generate_series``, then the
dedupe keys), ``executemany`` on SQLite. Each touched (tenant, hour) is queued once through
``rollup_pending_mark``, and the tables are vacuumed and analysed as autovacuum would after a bulk
load. Then concurrent workers run ``rollup_pending_run()`` until the queue is empty, on the clock.
"""

import random
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from apps.metering.services.event_store import STORED_COLUMNS
from tests.bench.ceiling import QUOTED_COLUMNS, sqlite_rows, sqlite_time
from tests.bench.scratch import ScratchDatabase, raw_connect, settle, tables_empty
from tests.bench.server import CpuMeter
from tests.bench.workload import (
    RECENT_MINUTES,
    SPREAD_DAYS,
    BenchTenant,
    event_row,
    events_make,
)

POOL = 20_000
CHUNK = 50_000
EVENT_TABLES = [
    "metering_event",
    "metering_event_key",
    "metering_rollup_pending",
    "metering_usage_rollup",
    "metering_rollup_hour",
    "metering_ingest_tally",
    "metering_ingest_batch",
]
# A replicated row: the pool row's columns, but its own id, timestamp (the same mix of recent and
# late as ``workload.event_make``, to the millisecond) and receive time.
_PG_REPLICATE = """
INSERT INTO metering_event ({columns})
SELECT {values}
FROM generate_series(0, %(count)s - 1) AS g JOIN bench_pool p ON p.n = g %% %(pool)s
"""
_PG_OVERRIDES = {
    "timestamp": (
        "date_trunc('milliseconds', %(now)s::timestamptz - CASE WHEN random() < %(late)s "
        f"THEN random() * interval '{SPREAD_DAYS} days' "
        f"ELSE random() * interval '{RECENT_MINUTES} minutes' END)"
    ),
    "event_id": "'rb_' || lpad(g::text, 9, '0')",
    "received_at": "%(now)s::timestamptz",
}


@dataclass
class RollupResult:
    events: int
    pairs: int
    elapsed_s: float
    load_s: float
    cpu_s: dict[str, float]
    complete: bool  # False when the time budget ran out first


def _pool(tenants: list[BenchTenant], now: datetime) -> list[tuple]:
    generated = events_make(count=POOL, tenants=tenants, seed=7, now=now, first_index=10**8)
    return [event_row(event, tenant_id=tenant.id, received_at=now) for tenant, event in generated]


def _load_postgresql(
    conn: psycopg.Connection, pool: list[tuple], *, count: int, now: datetime, late: float
) -> None:
    values = ", ".join(_PG_OVERRIDES.get(c, f'p."{c}"') for c in STORED_COLUMNS)
    with conn.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE bench_pool (n integer, LIKE metering_event)")
        with cursor.copy(f"COPY bench_pool (n, {QUOTED_COLUMNS}) FROM STDIN") as copy:
            for n, row in enumerate(pool):
                copy.write_row((n, *row))
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(
            _PG_REPLICATE.format(columns=QUOTED_COLUMNS, values=values),
            {"count": count, "pool": len(pool), "now": now, "late": late},
        )
        cursor.execute(
            'INSERT INTO metering_event_key (tenant_id, event_id, payload_hash, "timestamp") '
            'SELECT tenant_id, event_id, md5(event_id), "timestamp" FROM metering_event'
        )
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM (ANALYZE) metering_event, metering_event_key")


def _load_sqlite(
    conn: sqlite3.Connection, pool: list[tuple], *, count: int, now: datetime, late: float
) -> None:
    rng = random.Random(42)
    marks = ", ".join("?" for _ in STORED_COLUMNS)
    for first in range(0, count, CHUNK):
        rows = []
        for g in range(first, min(first + CHUNK, count)):
            base = pool[g % len(pool)]
            window = SPREAD_DAYS * 86_400 if rng.random() < late else RECENT_MINUTES * 60
            at = now - timedelta(milliseconds=int(rng.random() * window * 1000))
            rows.append((base[0], at, f"rb_{g:09d}", base[3], now, *base[5:]))
        conn.executemany(
            f"INSERT INTO metering_event ({QUOTED_COLUMNS}) VALUES ({marks})", sqlite_rows(rows)
        )
        conn.executemany(
            'INSERT INTO metering_event_key (tenant_id, event_id, payload_hash, "timestamp") '
            "VALUES (?, ?, ?, ?)",
            [(r[0].hex, r[2], "0" * 32, sqlite_time(r[1])) for r in rows],
        )
    conn.commit()
    conn.execute("ANALYZE")


def rollup_load(
    *,
    scratch: ScratchDatabase,
    count: int,
    tenants: list[BenchTenant],
    now: datetime,
    late_fraction: float,
) -> int:
    """Empty the event store, load ``count`` events and queue their hours. Returns the pairs."""
    from django.db import transaction
    from django.db.models.functions import TruncHour

    from apps.metering.models import Event
    from apps.metering.services.rollup import rollup_pending_mark

    tables_empty(scratch, EVENT_TABLES)
    pool = _pool(tenants, now)
    conn = raw_connect(scratch)
    try:
        if isinstance(conn, psycopg.Connection):
            _load_postgresql(conn, pool, count=count, now=now, late=late_fraction)
        else:
            _load_sqlite(conn, pool, count=count, now=now, late=late_fraction)
    finally:
        conn.close()
    pairs = list(
        Event.objects.annotate(hour=TruncHour("timestamp"))
        .values_list("tenant_id", "hour")
        .distinct()
    )
    with transaction.atomic():
        rollup_pending_mark(tenant_hours=pairs, marked_at=now)
    return len(pairs)


def _rolled_up_events() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(SUM(events), 0) FROM metering_usage_rollup")
        return int(cursor.fetchone()[0])


def _rollup_worker(
    *,
    start: threading.Barrier,
    done: threading.Barrier,
    budget_s: float,
    rebuilt: list[int],
) -> None:
    """One rollup worker, as a Celery worker runs the task: a claim per transaction until the
    queue is empty or the budget is spent. Its connection stays open from before the clock
    starts until after it stops, so that the CPU meter sees its server process throughout."""
    from django.db import connection

    from apps.metering.services.rollup import rollup_pending_run

    connection.ensure_connection()
    start.wait()
    began = time.perf_counter()
    try:
        while time.perf_counter() - began < budget_s:
            pairs = rollup_pending_run(max_batches=1)
            if not pairs:
                break
            rebuilt.append(pairs)
    finally:
        done.wait()  # the clock stops here
        done.wait()  # and the CPU meter has read the server processes
        connection.close()


def rollup_measure(
    *,
    scratch: ScratchDatabase,
    count: int,
    tenants: list[BenchTenant],
    now: datetime,
    late_fraction: float,
    workers: int = 2,
    budget_s: float = 600.0,
) -> RollupResult:
    """Load ``count`` events, then time ``workers`` concurrent rollup workers (threads, each
    with its own database connection) until the queue is empty, or until ``budget_s`` has
    passed: the rate is then over the events rolled up so far. ``late_fraction`` 1.0 spreads
    events over 30 days of hours, as a backfill or a worker catching up sees them; 0.02 is the
    live mix the ingest phase sends."""
    began = time.perf_counter()
    queued = rollup_load(
        scratch=scratch, count=count, tenants=tenants, now=now, late_fraction=late_fraction
    )
    load_s = time.perf_counter() - began
    print(f"bench: loaded {count:,} events in {load_s:.1f} s, {queued:,} hours", file=sys.stderr)
    settle(scratch)
    rebuilt: list[int] = []
    start = threading.Barrier(workers + 1)
    done = threading.Barrier(workers + 1)
    threads = [
        threading.Thread(
            target=_rollup_worker,
            kwargs={"start": start, "done": done, "budget_s": budget_s, "rebuilt": rebuilt},
        )
        for _ in range(workers)
    ]
    for thread in threads:
        thread.start()
    cpu = CpuMeter(database=scratch.pg_database)
    while start.n_waiting < workers:  # every worker is connected and waiting
        time.sleep(0.01)
    cpu.start()
    start.wait()
    began = time.perf_counter()
    done.wait()
    elapsed = time.perf_counter() - began
    cpu_s = cpu.stop()
    done.wait()
    for thread in threads:
        thread.join()
    rolled_up = _rolled_up_events()
    left = _pending_rows()
    complete = left == 0
    if complete and rolled_up != count:
        raise RuntimeError(f"rollup: {rolled_up:,} events in the rollups of {count:,} loaded")
    return RollupResult(
        events=rolled_up,
        pairs=sum(rebuilt),
        elapsed_s=elapsed,
        load_s=load_s,
        cpu_s=cpu_s,
        complete=complete,
    )


def _pending_rows() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM metering_rollup_pending")
        return int(cursor.fetchone()[0])


_BARE_TABLE = "bench_rollup_scratch"


def rollup_bare_measure(*, scratch: ScratchDatabase) -> tuple[float, int]:
    """Seconds for the rollup's own grouping statement over every stored event at once, and the
    events it covered: one INSERT ... SELECT into a scratch copy of the rollup table (its indexes
    included), in one process, with no claims, queue, hour locks or semi-join, and memory enough
    that the aggregate never spills. What the rollup's SQL costs at its barest, to set the
    workers' rate against (PostgreSQL only; the scratch table is dropped afterwards)."""
    from django.db import connection, transaction

    from apps.metering.services.rollup import (
        _DIMENSION_SOURCES,
        _HOUR_OF,
        _INSERT_COLUMNS,
        _MEASURES,
    )

    hour_of = _HOUR_OF["postgresql"]
    measures = ", ".join(_MEASURES["postgresql"].values())
    dimensions = ", ".join(_DIMENSION_SOURCES.values())
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {_BARE_TABLE} (LIKE metering_usage_rollup INCLUDING ALL)")
    try:
        settle(scratch)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '2GB'")
            cursor.execute("SET LOCAL enable_sort = off")
            began = time.perf_counter()
            cursor.execute(
                f"INSERT INTO {_BARE_TABLE} ({', '.join(_INSERT_COLUMNS)}) "
                f"SELECT e.tenant_id, {hour_of}, {dimensions}, {measures} "
                f"FROM metering_event e GROUP BY e.tenant_id, {hour_of}, {dimensions}"
            )
            elapsed = time.perf_counter() - began
            cursor.execute(f"SELECT COALESCE(SUM(events), 0) FROM {_BARE_TABLE}")
            events = int(cursor.fetchone()[0])
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {_BARE_TABLE}")
    return elapsed, events
