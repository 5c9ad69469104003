"""The SDK's bench, one JSON line:

- ``track_median_us``: the caller's cost of one ``track()`` (inside a context, with four
  attributes), the median over rounds of 2,000 calls each (target: under 5 us). The flush thread
  is idle while a round is timed: this is what the app's request pays.
- ``encode_events_per_s``: ids, timestamps, merging and JSON per second on the flush thread,
  sent to a transport that answers at once (the SDK's own ceiling).
- ``flush_events_per_s``: events per second from a full queue into a local Percall (gunicorn,
  SQLite, started here as the end-to-end test does), batches of 1,000, ``flush()`` timed.

Knobs: ``BENCH_SDK_EVENTS`` (flushed into Percall, default 20,000), ``BENCH_SDK_ROUNDS`` (default
200), ``BENCH_SDK_SKIP=server`` to leave the server out.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import percall

CALLS_PER_ROUND = 2000


def _answer(request: httpx.Request) -> httpx.Response:
    count = request.content.count(b'"id":')
    return httpx.Response(
        200, json={"accepted": count, "duplicates": 0, "conflicts": 0, "rejected": 0, "results": []}
    )


def track_median_us(rounds: int) -> float:
    client = percall.Percall(
        "http://bench.invalid",
        "pc_bench",
        transport=httpx.MockTransport(_answer),
        batch_size=5000,
        flush_interval=3600,
        max_queue=10_000_000,
    )
    per_call = []
    with percall.context(tenant="globex", feature="search", workflow="answer"):
        track = client.track
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(CALLS_PER_ROUND):
                track(
                    "api.call",
                    endpoint="/v1/search",
                    status_code=200,
                    latency_ms=12.5,
                    bytes_out=512,
                )
            per_call.append((time.perf_counter() - started) / CALLS_PER_ROUND * 1e6)
            client.flush()  # outside the timed loop: the queue never reaches a batch
    client.close()
    return round(statistics.median(per_call), 3)


def encode_events_per_s(events: int) -> float:
    client = percall.Percall(
        "http://bench.invalid",
        "pc_bench",
        transport=httpx.MockTransport(_answer),
        batch_size=1000,
        flush_interval=3600,
        max_queue=10_000_000,
    )
    with percall.context(tenant="globex", feature="search", new_span=True):
        for i in range(events):
            client.track(
                "llm.call",
                model="gpt-4o",
                input_tokens=812 + i % 7,
                output_tokens=96,
                cost=0.00299,
                latency_ms=431.2,
            )
    started = time.perf_counter()
    client.flush()
    elapsed = time.perf_counter() - started
    client.close()
    return round(events / elapsed)


def flush_events_per_s(events: int) -> dict[str, object]:
    from tests.percall_server import Unavailable, percall_server, tenant_create

    try:
        with percall_server(workers=2) as server:
            tenant_create(server, "globex")
            client = percall.Percall(
                server.url,
                server.api_key,
                batch_size=1000,
                flush_interval=3600,
                max_queue=10_000_000,
                timeout=60,
            )
            with percall.context(tenant="globex", feature="search", new_span=True):
                for i in range(events):
                    client.track(
                        "llm.call",
                        model="gpt-4o",
                        input_tokens=812 + i % 7,
                        output_tokens=96,
                        cost=0.00299,
                        latency_ms=431.2,
                    )
            started = time.perf_counter()
            client.flush()
            elapsed = time.perf_counter() - started
            stats = client.stats()
            client.close()
            return {
                "flush_events_per_s": round(stats["sent"] / elapsed),
                "flushed": stats["sent"],
                "flush_failed": stats["failed"],
            }
    except Unavailable as exc:
        return {"flush_events_per_s": None, "flush_skipped": str(exc)}


def main() -> None:
    events = int(os.environ.get("BENCH_SDK_EVENTS", "20000"))
    rounds = int(os.environ.get("BENCH_SDK_ROUNDS", "200"))
    result: dict[str, object] = {
        "sdk_track_median_us": track_median_us(rounds),
        "sdk_track_target_us": 5,
        "sdk_encode_events_per_s": encode_events_per_s(events),
    }
    if "server" not in os.environ.get("BENCH_SDK_SKIP", ""):
        result.update({f"sdk_{k}": v for k, v in flush_events_per_s(events).items()})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
