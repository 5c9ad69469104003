"""`make bench`: ingestion and rollup throughput as one JSON line on stdout (progress on stderr).

1. A scratch database is recreated and migrated; tenants and an ingest key are made through the
   services (``scratch``).
2. ``BENCH_EVENTS`` events (default 200,000) are generated and encoded into bodies of 1,000 before
   any clock starts (``workload``).
3. Ceiling: the same rows written raw by one process, COPY on PostgreSQL (``ceiling``).
4. HTTP: gunicorn serves the production settings on loopback; ``BENCH_CLIENTS`` threads POST the
   bodies to ``/api/v1/events``; every answer must be 200 and the accepted counts must add up.
5. Rollup: ``BENCH_ROLLUP_EVENTS`` events (default 1,000,000) are loaded, then only
   ``rollup_pending_run()`` is timed (``rollup``), for the live mix and for a backfill; then the
   backfill's events are grouped once more by the rollup's statement alone, as a reference.
6. Billing (PostgreSQL): ``BENCH_BILLING_TENANTS`` tenants (10,000) on a five-charge rate card
   over ``BENCH_BILLING_EVENTS`` events (5,000,000) are set up and rolled up, then one billing
   run drafts and finalizes every invoice on the clock; then PDF renders (``billing``).

PostgreSQL when ``DATABASE_URL`` names a server (the scratch database ``percall_bench`` on it),
SQLite otherwise. Knobs: ``BENCH_TENANTS`` (30), ``BENCH_CLIENTS`` (4), ``BENCH_WORKERS`` (2),
``BENCH_WORKER_CLASS`` (sync), ``BENCH_THREADS`` (1, for gthread), ``BENCH_LATE_FRACTION``
(0.02 of ingested events up to 30 days old, the rest from the last hour),
``BENCH_ROLLUP_LATE_FRACTION`` (1.0: rolled-up events spread over 30 days of hours),
``BENCH_ROLLUP_MAX_SECONDS`` (600: past it the rollup rate is over the events done so far),
``BENCH_SKIP`` (comma list of ``http``, ``rollup``, ``billing``, ``analytics``) and
``BENCH_PYSPY`` (a
directory: sample
the workers with py-spy during the timed ingest, see ``pyspy``). On SQLite the rollup defaults
to 200,000 events.

Where the time goes: ``python -m tests.bench.profile_ingest`` (one batch, step by step) and
``python -m tests.bench.explain_rollup`` (plans of the rollup statements). What the ingest
target asks of the machine: ``python -m tests.bench.bare`` (a bare prototype of the path against
the same ceiling).
"""

import json
import os
import subprocess
import sys

from tests.bench.scratch import django_setup, scratch_database_recreate


def _source_version() -> str:
    """The commit measured, '-dirty' when the working tree differs from it."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return described.stdout.strip()


def main() -> None:
    skip = {part.strip() for part in os.environ.get("BENCH_SKIP", "").split(",") if part}
    scratch = scratch_database_recreate()
    name = scratch.url.rsplit("/", 1)[-1]
    print(f"bench: scratch {scratch.vendor} database {name}; migrating", file=sys.stderr)
    django_setup(scratch)
    from django.utils import timezone

    from tests.bench import phases  # app modules read settings on import: after setup
    from tests.bench.scratch import tenants_and_key_create

    now = timezone.now()
    tenants, key = tenants_and_key_create(count=phases.env_int("BENCH_TENANTS", 30), now=now)
    result = {
        "database": scratch.vendor,
        "source": _source_version(),
        "nproc": os.cpu_count(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        "tenants": len(tenants),
    }
    result |= phases.ingest_phase(
        scratch=scratch, tenants=tenants, key=key, now=now, skip_http="http" in skip
    )
    if "rollup" not in skip:
        result |= phases.rollup_phase(scratch=scratch, tenants=tenants, now=now)
    if "billing" not in skip:
        result |= phases.billing_phase(scratch=scratch)
    if "analytics" not in skip:
        result |= phases.analytics_phase(scratch=scratch)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
