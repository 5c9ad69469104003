"""Where one ingest batch spends its time: the view run in-process, under cProfile, per step.

``python -m tests.bench.profile_ingest [out.prof]`` recreates the scratch database (as ``run``
does), then posts ``BENCH_PROFILE_BATCHES`` bodies of 1,000 events (default 20) through
``django.test.Client`` to ``/api/v1/events``: once plain for the wall time per batch, once with
every SQL statement timed, once under cProfile. It prints milliseconds per batch for each step
and each kind of statement (client-observed, so server time included). No server and no
concurrency: it answers "what does one batch cost", not "how fast can we go".
"""

import cProfile
import os
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from tests.bench.scratch import django_setup, scratch_database_recreate, tenants_and_key_create

# (label, module path fragment, function name): cumulative time of each, per batch.
STEPS = (
    ("whole request (WSGI handler)", "django/core/handlers/base.py", "get_response"),
    ("  API key authentication", "tenants/api/authentication.py", "authenticate"),
    ("  body read", "metering/api/views.py", "_body_read"),
    ("  events_ingest", "services/ingest.py", "events_ingest"),
    ("    decode (msgspec envelope + events)", "services/ingest.py", "_events_decode"),
    ("    tenant lookup", "tenants/selectors.py", "tenant_ids_by_external_id"),
    ("    event_normalize (checks)", "services/event_schema.py", "event_normalize"),
    ("      decimal checks (_number)", "services/event_schema.py", "_number"),
    ("    payload hash", "services/ingest.py", "_payload_hash"),
    ("    timestamp_to_ms", "services/event_schema.py", "timestamp_to_ms"),
    ("    _store", "services/ingest.py", "_store"),
    ("      partitions ensure", "services/partitions.py", "event_partitions_ensure"),
    ("      event_rows_append", "services/event_store.py", "event_rows_append"),
    ("        COPY write_row", "psycopg/_copy.py", "write_row"),
    ("    _record (batch, tallies, marks)", "services/ingest.py", "_record"),
    ("      plain inserts (tallies, marks)", "core/bulk.py", "rows_insert"),
    ("      first-call update", "tenants/services/tenants.py", "tenant_first_calls_record"),
    ("      rollup kick (on commit)", "core/jobs.py", "send"),
    ("    commit", "psycopg/connection.py", "commit"),
    ("  waiting on PostgreSQL (all statements)", "psycopg/connection.py", "wait"),
    ("  response render", "rest_framework/response.py", "rendered_content"),
)


def _sql_kind(sql: str) -> str:
    words = " ".join(sql.split()[:6])
    for marker, kind in (
        ("percall_ingest_stage (", "COPY into staging"),
        ("WITH new_keys", "append statement (keys + events)"),
        ("metering_ingest_tally", "INSERT ingest tallies"),
        ("metering_rollup_pending", "INSERT rollup marks"),
        ("metering_ingest_batch", "INSERT ingest batch"),
        ('UPDATE "tenants_tenant"', "UPDATE tenant first call"),
        ("tenants_tenant", "SELECT tenants"),  # after the UPDATE, which names it too
        ('FROM "tenants_apikey"', "SELECT api key"),
    ):
        if marker in sql:
            return kind
    if words.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")):
        return words.rsplit(" ", 1)[0]  # one kind, whatever the savepoint's generated name
    return words[:60]


class SqlTimer:
    """Client-observed time of each statement, by kind (a Django execute wrapper)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def __call__(self, execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            kind = _sql_kind(sql)
            self.seconds[kind] += time.perf_counter() - began
            self.calls[kind] += 1


def _post_all(client: Any, key: str, bodies: list[bytes]) -> float:
    began = time.perf_counter()
    for body in bodies:
        response = client.post(
            "/api/v1/events",
            body,
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}"},
        )
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.content[:300]!r}")
    return time.perf_counter() - began


def _steps_report(profile: cProfile.Profile, batches: int) -> None:
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    for label, path, name in STEPS:
        total = sum(
            entry[3]
            for (filename, _, function), entry in stats.items()
            if function == name and filename.endswith(path)
        )
        print(f"{label:<48} {total * 1000 / batches:8.1f} ms")


def main() -> None:
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    batches = int(os.environ.get("BENCH_PROFILE_BATCHES", 20))
    scratch = scratch_database_recreate()
    django_setup(scratch)
    from tests.bench.workload import LATE_FRACTION, ingest_workload_make  # needs settings

    now = timezone.now()
    tenants, key = tenants_and_key_create(count=int(os.environ.get("BENCH_TENANTS", 30)), now=now)
    late_fraction = float(os.environ.get("BENCH_LATE_FRACTION", LATE_FRACTION))
    parts = [
        ingest_workload_make(
            count=batches * 1000,
            tenants=tenants,
            now=now,
            seed=seed,
            first_index=seed * 10**8,
            late_fraction=late_fraction,
        )
        for seed in (1, 2, 3)
    ]
    client = Client(HTTP_HOST="127.0.0.1")
    _post_all(client, key, parts[0].bodies[:2])  # warm: imports, connection, staging table
    plain = _post_all(client, key, parts[0].bodies[2:])
    print(f"{scratch.vendor}: {plain * 1000 / (batches - 2):.1f} ms per batch without profiler")
    timer = SqlTimer()
    with connection.execute_wrapper(timer):
        _post_all(client, key, parts[1].bodies)
    profile = cProfile.Profile()
    profile.enable()
    _post_all(client, key, parts[2].bodies)
    profile.disable()
    print(f"\nsteps, ms per batch of 1,000 under cProfile ({batches} batches):")
    _steps_report(profile, batches)
    print("\nSQL, ms per batch (client-observed, no profiler):")
    for kind, seconds in sorted(timer.seconds.items(), key=lambda item: -item[1]):
        calls = timer.calls[kind] / batches
        print(f"  {kind:<44} {seconds * 1000 / batches:8.1f} ms  ({calls:g} calls)")
    if len(sys.argv) > 1:
        profile.dump_stats(sys.argv[1])
        print(f"\ncProfile data: {sys.argv[1]}")


if __name__ == "__main__":
    main()
