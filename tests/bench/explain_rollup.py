"""EXPLAIN ANALYZE of the rollup over the events already in the scratch database.

``python -m tests.bench.explain_rollup`` after a ``tests.bench.run`` (which leaves its scratch
database, with the rollup events, in place): every (tenant, hour) of the stored events is queued
and ``rollup_pending_run`` rebuilds them in its own batches (``BENCH_EXPLAIN_BATCH`` pairs to
override), each batch committed as usual: rebuilding is idempotent, so the database ends as it
began. Each statement that writes ``metering_usage_rollup`` runs as ``EXPLAIN (ANALYZE,
BUFFERS)``; the first batch's plans are printed, with server times summed over all batches. Other
statements are only timed. ``BENCH_EXPLAIN_SET="work_mem=128MB jit=off"`` tries session
settings first.
"""

import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from tests.bench.scratch import ScratchDatabase


class Explainer:
    """A Django execute wrapper: plans for rollup writes, timings for the rest."""

    def __init__(self) -> None:
        self.plans: list[tuple[str, list[str]]] = []
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def __call__(self, execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
        head = " ".join(sql.split())
        writes_rollup = "metering_usage_rollup" in head and not many
        kind = head[:70]
        began = time.perf_counter()
        try:
            if not writes_rollup:
                return execute(sql, params, many, context)
            cursor = context["cursor"].cursor  # the driver's cursor: no wrapper on this one
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            self.plans.append((head[:200], [row[0] for row in cursor.fetchall()]))
            return None
        finally:
            self.seconds[kind] += time.perf_counter() - began
            self.calls[kind] += 1


def _statement(head: str) -> str:
    return "DELETE rollup rows" if "DELETE FROM metering_usage_rollup" in head else "INSERT rollup"


def main() -> None:
    url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/percall_bench")
    scratch = ScratchDatabase(vendor="postgresql", url=url)
    os.environ.update(scratch.django_env())
    import django

    django.setup()
    from django.db import connection, transaction
    from django.utils import timezone

    from apps.metering.services.rollup import rollup_pending_mark, rollup_pending_run

    explainer = Explainer()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM metering_rollup_pending")
        cursor.execute(
            "SELECT DISTINCT tenant_id, date_trunc('hour', \"timestamp\") FROM metering_event"
        )
        pairs = cursor.fetchall()
        cursor.execute("SELECT count(*) FROM metering_event")
        events = cursor.fetchone()[0]
        rollup_pending_mark(tenant_hours=pairs, marked_at=timezone.now())
    with connection.cursor() as cursor:  # this session only
        for setting in os.environ.get("BENCH_EXPLAIN_SET", "").split():
            name, _, value = setting.partition("=")
            cursor.execute("SELECT set_config(%s, %s, false)", [name, value])
    batch = os.environ.get("BENCH_EXPLAIN_BATCH")
    began = time.perf_counter()
    with connection.execute_wrapper(explainer):
        rollup_pending_run(**({"batch_size": int(batch)} if batch else {}))
    elapsed = time.perf_counter() - began
    print(
        f"{events:,} events in {len(pairs):,} (tenant, hour) pairs, batches: {batch or 'default'}"
    )
    print(f"rollup_pending_run under EXPLAIN ANALYZE: {elapsed:.2f} s\n")
    for head, plan in explainer.plans[:2]:
        print(f"-- first batch: {head}")
        print("\n".join(plan), end="\n\n")
    executions: dict[str, float] = defaultdict(float)
    for head, plan in explainer.plans:
        for line in plan:
            if line.startswith("Execution Time"):
                executions[_statement(head)] += float(line.split()[2]) / 1000
    print("server execution time, all batches:")
    for name, seconds in executions.items():
        print(f"  {seconds:8.3f} s  {name}")
    print("statements (client-observed):")
    for kind, seconds in sorted(explainer.seconds.items(), key=lambda item: -item[1]):
        print(f"  {seconds:8.3f} s  {explainer.calls[kind]:7,} x  {kind}")


if __name__ == "__main__":
    main()
