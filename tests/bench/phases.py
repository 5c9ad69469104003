"""The timed phases of ``run``: the raw COPY ceiling, HTTP ingest and rollup.

Imported only once Django is set up on the scratch database: the app modules read settings when
they are imported.
"""

import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tests.bench.ceiling import copy_ceiling_measure
from tests.bench.pyspy import workers_recorded
from tests.bench.rollup import rollup_bare_measure, rollup_measure
from tests.bench.scratch import ScratchDatabase, settle
from tests.bench.server import (
    CpuMeter,
    ServerConfig,
    batches_send,
    child_pids,
    gunicorn_serving,
    log_tail,
)
from tests.bench.workload import (
    LATE_FRACTION,
    BenchTenant,
    IngestWorkload,
    ingest_workload_make,
)

WARMUP_BATCHES_PER_WORKER = 4
WARMUP_BATCH_EVENTS = 100


def env_int(name: str, default: int) -> int:
    value = int(os.environ.get(name, default))
    if value < 1:
        raise SystemExit(f"bench: {name}={value}; must be at least 1")
    return value


def env_fraction(name: str, default: float) -> float:
    value = float(os.environ.get(name, default))
    if not 0 <= value <= 1:
        raise SystemExit(f"bench: {name}={value}; must be between 0 and 1")
    return value


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _stored_events() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM metering_event")
        return int(cursor.fetchone()[0])


def _median(values: list[float]) -> float:
    return statistics.median(values)


@dataclass
class _Round:
    copy_rate: float
    http_rate: float
    http_s: float
    cpu_s: dict[str, float]


def _http_round(
    *,
    port: int,
    key: str,
    clients: int,
    workload: IngestWorkload,
    cpu: CpuMeter,
    config: ServerConfig,
) -> tuple[float, dict[str, float]]:
    """POST every body of ``workload`` once, on the clock; returns (seconds, CPU by process)."""
    before = _stored_events()
    cpu.start()
    sent = batches_send(port=port, key=key, bodies=workload.bodies, clients=clients)
    cpu_s = cpu.stop()
    stored = _stored_events() - before
    if sent.errors or set(sent.statuses) != {200} or sent.accepted != workload.events:
        raise RuntimeError(
            f"ingest: statuses {dict(sent.statuses)}, {sent.accepted} of {workload.events} "
            f"accepted, errors {sent.errors}; server log {config.log_path} ends:\n"
            + log_tail(config.log_path, 60)
        )
    if stored != workload.events:
        raise RuntimeError(f"ingest: {stored} events stored of {workload.events} accepted")
    return sent.elapsed_s, cpu_s


def _rounds_measure(
    *,
    scratch: ScratchDatabase,
    workloads: list[IngestWorkload],
    warmup: IngestWorkload,
    key: str,
    clients: int,
    config: ServerConfig,
    skip_http: bool,
) -> list[_Round]:
    """Each round: the raw COPY ceiling of a workload's rows, then HTTP ingest of the same
    events. Alternating them puts both under the same machine conditions, which on a shared VM
    move more between minutes than any change measured here."""
    rounds: list[_Round] = []
    if skip_http:
        for workload in workloads:
            settle(scratch)
            copy_s = copy_ceiling_measure(scratch=scratch, rows=workload.rows)
            rounds.append(_Round(workload.events / copy_s, 0.0, 0.0, {}))
        return rounds
    with gunicorn_serving(env=scratch.django_env(), config=config) as (port, master_pid):
        warm = batches_send(port=port, key=key, bodies=warmup.bodies, clients=clients)
        if warm.errors or warm.accepted != warmup.events:
            raise RuntimeError(
                f"warm-up: statuses {dict(warm.statuses)}, errors {warm.errors}; server log "
                f"{config.log_path} ends:\n" + log_tail(config.log_path, 60)
            )
        cpu = CpuMeter(master_pid=master_pid, database=scratch.pg_database)
        with workers_recorded(child_pids(master_pid)):
            for number, workload in enumerate(workloads, start=1):
                settle(scratch)
                copy_s = copy_ceiling_measure(scratch=scratch, rows=workload.rows)
                settle(scratch)
                http_s, cpu_s = _http_round(
                    port=port, key=key, clients=clients, workload=workload, cpu=cpu, config=config
                )
                result = _Round(workload.events / copy_s, workload.events / http_s, http_s, cpu_s)
                log(
                    f"round {number}: raw COPY {result.copy_rate:,.0f} events/s, HTTP ingest "
                    f"{result.http_rate:,.0f} events/s ({result.http_rate / result.copy_rate:.3f})"
                )
                rounds.append(result)
    return rounds


def warmup_workload(*, workers: int, tenants: list[BenchTenant], now: datetime) -> IngestWorkload:
    """A few small batches for every worker, sent before the clock starts: each sync worker
    imports, connects and warms its caches on its first requests."""
    return ingest_workload_make(
        count=WARMUP_BATCHES_PER_WORKER * workers * WARMUP_BATCH_EVENTS,
        tenants=tenants,
        now=now,
        seed=1,
        first_index=10**9,
        batch_size=WARMUP_BATCH_EVENTS,
    )


def ingest_phase(
    *,
    scratch: ScratchDatabase,
    tenants: list[BenchTenant],
    key: str,
    now: datetime,
    skip_http: bool,
) -> dict[str, Any]:
    count = env_int("BENCH_EVENTS", 200_000)
    clients = env_int("BENCH_CLIENTS", 8)
    rounds_wanted = env_int("BENCH_ROUNDS", 3)
    config = ServerConfig(
        workers=env_int("BENCH_WORKERS", 4),
        worker_class=os.environ.get("BENCH_WORKER_CLASS", "sync"),
        threads=env_int("BENCH_THREADS", 1),
    )
    late_fraction = env_fraction("BENCH_LATE_FRACTION", LATE_FRACTION)
    began = time.perf_counter()
    workloads = [
        ingest_workload_make(
            count=count,
            tenants=tenants,
            now=now,
            seed=42 + number,
            first_index=number * count,
            late_fraction=late_fraction,
        )
        for number in range(rounds_wanted)
    ]
    warmup = warmup_workload(workers=config.workers, tenants=tenants, now=now)
    log(
        f"{rounds_wanted} x {count:,} events in bodies of {workloads[0].batch_sizes[0]:,} "
        f"({workloads[0].body_bytes / 1e6:.0f} MB a round) built in "
        f"{time.perf_counter() - began:.1f} s"
    )
    rounds = _rounds_measure(
        scratch=scratch,
        workloads=workloads,
        warmup=warmup,
        key=key,
        clients=clients,
        config=config,
        skip_http=skip_http,
    )
    copy_rate = _median([r.copy_rate for r in rounds])
    log(f"raw COPY ceiling: {copy_rate:,.0f} events/s (median of {len(rounds)} rounds)")
    figures: dict[str, Any] = {
        "events": count,
        "rounds": len(rounds),
        "batch_size": workloads[0].batch_sizes[0],
        "late_fraction": late_fraction,
        "clients": clients,
        "gunicorn": f"{config.workers} {config.worker_class} workers"
        + (f" x {config.threads} threads" if config.worker_class == "gthread" else ""),
        "copy_events_per_s": round(copy_rate),
        "copy_events_per_s_rounds": [round(r.copy_rate) for r in rounds],
    }
    if skip_http:
        return figures
    middle = sorted(rounds, key=lambda r: r.http_rate)[len(rounds) // 2]
    figures |= {
        "ingest_http_events_per_s": round(_median([r.http_rate for r in rounds])),
        "ingest_http_events_per_s_rounds": [round(r.http_rate) for r in rounds],
        "ingest_http_s": round(middle.http_s, 2),
        "ingest_cpu_us_per_event": {
            name: round(seconds / count * 1e6, 1) for name, seconds in middle.cpu_s.items()
        },
        # The median of each round's ratio: both sides of a ratio ran back to back.
        "ingest_to_copy_ratio": round(_median([r.http_rate / r.copy_rate for r in rounds]), 3),
    }
    log(f"HTTP ingest: {figures['ingest_http_events_per_s']:,} events/s (median)")
    return figures


def rollup_phase(
    *, scratch: ScratchDatabase, tenants: list[BenchTenant], now: datetime
) -> dict[str, Any]:
    """The rollup of two loads: the live mix the ingest phase sends (most events from the last
    hour), then a backfill spread over 30 days of hours."""
    # On SQLite the load goes row by row through executemany (about 8,000 rows/s here): a
    # smaller default keeps the run to a couple of minutes.
    default = 1_000_000 if scratch.vendor == "postgresql" else 200_000
    # SQLite has one writer: concurrent workers would only take turns.
    workers = env_int("BENCH_ROLLUP_WORKERS", 2 if scratch.vendor == "postgresql" else 1)
    figures: dict[str, Any] = {"rollup_workers": workers}
    scenarios = (
        ("rollup", env_fraction("BENCH_LATE_FRACTION", LATE_FRACTION)),
        ("rollup_backfill", env_fraction("BENCH_ROLLUP_LATE_FRACTION", 1.0)),
    )
    count = env_int("BENCH_ROLLUP_EVENTS", default)
    for name, late_fraction in scenarios:
        rollup = rollup_measure(
            scratch=scratch,
            count=count,
            tenants=tenants,
            now=now,
            late_fraction=late_fraction,
            workers=workers,
            budget_s=env_int("BENCH_ROLLUP_MAX_SECONDS", 600),
        )
        rate = round(rollup.events / rollup.elapsed_s)
        log(
            f"{name} ({late_fraction:.0%} late): {rate:,} events/s"
            + ("" if rollup.complete else " (time budget ran out)")
        )
        figures |= {
            f"{name}_late_fraction": late_fraction,
            f"{name}_events": rollup.events,
            f"{name}_hours": rollup.pairs,
            f"{name}_complete": rollup.complete,
            f"{name}_events_per_s": rate,
            f"{name}_s": round(rollup.elapsed_s, 2),
            f"{name}_cpu_s": rollup.cpu_s,
        }
    if scratch.vendor == "postgresql":
        # The backfill's events are still stored: the same grouping as one bare statement.
        bare_s, bare_events = rollup_bare_measure(scratch=scratch)
        if bare_events != count:
            raise RuntimeError(f"bare rollup: {bare_events:,} events grouped of {count:,}")
        rate = round(bare_events / bare_s)
        log(f"rollup_backfill as one bare statement, one process: {rate:,} events/s")
        figures |= {
            "rollup_backfill_bare_s": round(bare_s, 2),
            "rollup_backfill_bare_events_per_s": rate,
        }
    return figures


def billing_phase(*, scratch: ScratchDatabase) -> dict[str, Any]:
    """One billing run closing October for many tenants, and PDF renders (PostgreSQL)."""
    from tests.bench.billing import billing_measure

    if scratch.vendor != "postgresql":
        log("billing: skipped on SQLite (the invoice-run target is PostgreSQL's)")
        return {}
    result = billing_measure(
        scratch=scratch,
        tenants=env_int("BENCH_BILLING_TENANTS", 10_000),
        events=env_int("BENCH_BILLING_EVENTS", 5_000_000),
    )
    rate = result.finalized / result.run_s
    log(
        f"billing run: {result.finalized:,} invoices drafted and finalized in "
        f"{result.run_s:.1f} s ({rate:,.0f} invoices/s); PDFs: "
        f"{result.pdf_renders / result.pdf_s:.1f} renders/s; leakage scan of the month: "
        f"{result.leakage_s:.1f} s ({result.findings:,} findings)"
    )
    return {
        "billing_tenants": result.tenants,
        "billing_events": result.events,
        "billing_run_s": round(result.run_s, 2),
        "billing_invoices_per_s": round(rate, 1),
        "billing_setup_rollup_s": round(result.rollup_s, 1),
        "pdf_renders_per_s": round(result.pdf_renders / result.pdf_s, 2),
        "leakage_scan_s": round(result.leakage_s, 2),
        "leakage_findings": result.findings,
    }


def analytics_phase(*, scratch: ScratchDatabase) -> dict[str, Any]:
    """Every cost metric over a month of cost rollups summarizing 10M events (PostgreSQL)."""
    from tests.bench.analytics import analytics_measure

    if scratch.vendor != "postgresql":
        log("analytics: skipped on SQLite (the query-time target is PostgreSQL's)")
        return {}
    result = analytics_measure(
        scratch=scratch,
        tenants=env_int("BENCH_ANALYTICS_TENANTS", 200),
        events=env_int("BENCH_ANALYTICS_EVENTS", 10_000_000),
        repeats=env_int("BENCH_ANALYTICS_REPEATS", 5),
    )
    slowest = max(result.median_ms, key=lambda k: result.median_ms[k])
    log(
        f"analytics over {result.events:,} events ({result.rows:,} cost rows): slowest metric "
        f"{slowest} {result.median_ms[slowest]:.0f} ms (median)"
    )
    return {
        "analytics_events": result.events,
        "analytics_cost_rows": result.rows,
        "analytics_max_ms": result.median_ms[slowest],
        "analytics_median_ms": result.median_ms,
    }
