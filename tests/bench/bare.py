"""What a bare prototype of the ingest path reaches against the same COPY ceiling as ``run``.

``python -m tests.bench.bare`` (``DATABASE_URL`` naming a PostgreSQL server) serves this module's
WSGI app with gunicorn, as ``run`` serves Percall (4 sync workers, 8 clients, the same bodies of
1,000 events), and alternates each round: the raw COPY ceiling, then every mode below. It prints
one JSON line: each mode's median ratio to the ceiling, its rounds and its CPU per event.

The app decodes a batch with msgspec into untyped fields and writes it; it checks nothing, keeps
no tallies, queue rows or batch record, and answers every event as accepted. Two modes:

- ``/single``: one COPY into ``metering_event``, the month-partitioned table with its primary
  key. A prototype at its simplest, and not exactly-once: a partitioned table's unique index must
  hold the month, so a resend with another timestamp would be stored again.
- ``/exactly-once``: the dedupe keys (tenant, event id, a blake2b payload hash), sorted, COPYed
  into ``metering_event_key`` under its unique index, then the events as above: Percall's fast
  path for a batch of new events, without the checks, the savepoint and the fallback for a key
  already stored (a resend fails the request here).

This calibrates the ingest target: the distance from ``/exactly-once`` to Percall is what the
checks, the request handling and the bookkeeping cost; the distance from ``/single`` to
``/exactly-once`` is what the second write exactly-once needs costs.
"""

import hashlib
import json
import os
import statistics
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

MODES = ("single", "exactly-once")
_KEYS_COPY = 'COPY metering_event_key (tenant_id, event_id, payload_hash, "timestamp") FROM STDIN'


class _App:
    """Per-worker state, made on the first request: settings, then the columns, the decoder, a
    connection and the tenants' ids."""

    def __init__(self) -> None:
        import django
        import psycopg

        django.setup()
        from apps.metering.services.event_schema import ATTRIBUTE_COLUMNS
        from apps.metering.services.event_store import STORED_COLUMNS

        event = msgspec.defstruct(
            "BareEvent",
            [
                ("id", str),
                ("type", str),
                ("tenant", str),
                ("timestamp", str),
                ("properties", dict, {}),
                *((column, Any, None) for column in ATTRIBUTE_COLUMNS),
            ],
            gc=False,
        )
        batch = msgspec.defstruct("BareBatch", [("events", list[event])])  # type: ignore[valid-type]
        self.decoder = msgspec.json.Decoder(batch, float_hook=Decimal)
        self.encoder = msgspec.json.Encoder(decimal_format="number", order="sorted")
        quoted = ", ".join(f'"{column}"' for column in STORED_COLUMNS)
        self.events_copy = f"COPY metering_event ({quoted}) FROM STDIN"
        self.conn = psycopg.connect(os.environ["DATABASE_URL"])
        tenants = self.conn.execute("SELECT external_id, id::text FROM tenants_tenant")
        self.tenants: dict[str, str] = dict(tenants.fetchall())
        self.conn.commit()

    def store(self, body: bytes, mode: str) -> int:
        events: list[Any] = self.decoder.decode(body).events  # type: ignore[attr-defined]
        received = datetime.now(UTC).isoformat(timespec="milliseconds")
        encode, astuple = self.encoder.encode, msgspec.structs.astuple
        rows = [
            (self.tenants[e.tenant], e.timestamp, e.id, e.type, received, *astuple(e)[5:],
             encode(e.properties).decode(), False)
            for e in events
        ]  # fmt: skip
        with self.conn.cursor() as cursor:
            if mode == "exactly-once":
                rows.sort(key=lambda row: (row[0], row[2]))
                with cursor.copy(_KEYS_COPY) as copy:
                    for row in rows:
                        digest = hashlib.blake2b(encode(row[3:]), digest_size=16).hexdigest()
                        copy.write_row((row[0], row[2], digest, row[1]))
            with cursor.copy(self.events_copy) as copy:
                for row in rows:
                    copy.write_row(row)
        self.conn.commit()
        return len(rows)


_app: _App | None = None


def application(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
    """WSGI: ``POST /single`` or ``POST /exactly-once`` with ``{"events": [...]}``."""
    global _app
    mode = environ["PATH_INFO"].strip("/")
    if environ["REQUEST_METHOD"] != "POST" or mode not in MODES:
        start_response("405 Method Not Allowed", [("Content-Length", "0")])
        return [b""]
    if _app is None:
        _app = _App()
    body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
    stored = _app.store(body, mode)
    answer = b'{"accepted": %d, "duplicates": 0, "conflicts": 0, "rejected": 0}' % stored
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
    )
    return [answer]


def main() -> None:
    from tests.bench.scratch import django_setup, scratch_database_recreate

    scratch = scratch_database_recreate()
    if scratch.vendor != "postgresql":
        raise SystemExit("bench.bare: set DATABASE_URL to a PostgreSQL server")
    django_setup(scratch)
    from django.utils import timezone

    from tests.bench.ceiling import copy_ceiling_measure
    from tests.bench.phases import env_int, log, warmup_workload
    from tests.bench.scratch import settle, tables_empty, tenants_and_key_create
    from tests.bench.server import CpuMeter, ServerConfig, batches_send, gunicorn_serving
    from tests.bench.workload import ingest_workload_make

    now = timezone.now()
    tenants, key = tenants_and_key_create(count=env_int("BENCH_TENANTS", 30), now=now)
    count, clients = env_int("BENCH_EVENTS", 200_000), env_int("BENCH_CLIENTS", 8)
    workloads = [
        ingest_workload_make(
            count=count, tenants=tenants, now=now, seed=42 + n, first_index=n * count
        )
        for n in range(env_int("BENCH_ROUNDS", 3))
    ]
    config = ServerConfig(workers=env_int("BENCH_WORKERS", 4), app="tests.bench.bare:application")
    warmup = warmup_workload(workers=config.workers, tenants=tenants, now=now)
    ceilings: list[float] = []
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    ratios: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpu_us: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    with gunicorn_serving(env=scratch.django_env(), config=config) as (port, master_pid):
        # Every worker sets itself up on its first request: not on the clock.
        batches_send(port=port, key=key, bodies=warmup.bodies, clients=clients, path="/single")
        cpu = CpuMeter(master_pid=master_pid, database=scratch.pg_database)
        for number, workload in enumerate(workloads, start=1):
            settle(scratch)
            ceiling = workload.events / copy_ceiling_measure(scratch=scratch, rows=workload.rows)
            ceilings.append(ceiling)
            for mode in MODES:
                tables_empty(scratch, ["metering_event", "metering_event_key"])
                settle(scratch)
                cpu.start()
                sent = batches_send(
                    port=port, key=key, bodies=workload.bodies, clients=clients, path=f"/{mode}"
                )
                used = cpu.stop()
                if sent.errors or sent.accepted != workload.events:
                    raise RuntimeError(f"bench.bare {mode}: {sent.statuses}, {sent.errors}")
                rate = workload.events / sent.elapsed_s
                rates[mode].append(rate)
                ratios[mode].append(rate / ceiling)
                cpu_us[mode].append({k: v / workload.events * 1e6 for k, v in used.items()})
                log(
                    f"round {number}: raw COPY {ceiling:,.0f} events/s, bare {mode} "
                    f"{rate:,.0f} events/s ({rate / ceiling:.3f})"
                )
    result: dict[str, Any] = {
        "events": count,
        "copy_events_per_s_rounds": [round(c) for c in ceilings],
    }
    for mode in MODES:
        middle = sorted(range(len(workloads)), key=lambda n: ratios[mode][n])[len(workloads) // 2]
        result[mode] = {
            "to_copy_ratio": round(statistics.median(ratios[mode]), 3),
            "events_per_s_rounds": [round(r) for r in rates[mode]],
            "cpu_us_per_event": {k: round(v, 1) for k, v in cpu_us[mode][middle].items()},
        }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
