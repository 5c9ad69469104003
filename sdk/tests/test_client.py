"""The client: batching, ids, timestamps, retries, drops, stats."""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal

import httpx

import percall
from percall._encode import TOP_LEVEL

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_an_event_has_a_uuid7_a_millisecond_utc_time_and_only_known_top_level_names(server, client):
    client.track("api.call", endpoint="/search", status_code=200, http_method="GET")

    (event,) = server.stored
    assert UUID7.match(event["id"])
    assert RFC3339_MS.match(event["timestamp"])
    assert set(event) <= TOP_LEVEL
    assert event["properties"] == {"http_method": "GET"}
    assert server.headers[0]["authorization"] == "Bearer pc_test"


def test_ids_are_time_ordered():
    ids = [percall.uuid7(1_700_000_000 + i / 1000) for i in range(50)]
    assert ids == sorted(ids)


def test_numbers_are_sent_as_the_server_keeps_them(server, client):
    client.track(
        "llm.call",
        latency_ms=12.3456789,
        cost=0.1 + 0.2,
        credits=Decimal("1.50"),
        quantity=float("nan"),
        input_tokens=812.0,
        output_tokens="96",
        properties={"score": float("inf"), "ok": 1.5},
    )

    (event,) = server.stored
    assert event["latency_ms"] == 12.346  # microsecond precision is what is stored
    assert event["cost"] == 0.3  # 15 significant digits: no binary float noise
    assert event["credits"] == "1.5"  # a Decimal goes as a decimal string
    assert "quantity" not in event  # never NaN
    assert event["input_tokens"] == 812 and event["output_tokens"] == 96
    assert event["properties"] == {"score": None, "ok": 1.5}
    assert b"NaN" not in json.dumps(server.requests).encode()


def test_floats_keep_at_most_12_places_and_15_digits(server, client):
    client.track("llm.call", cost=1.234567890123456789e-7, credits=123456789.123456789)
    (event,) = server.stored
    assert event["cost"] == 1.23457e-07  # 12 places
    assert event["credits"] == 123456789.123457  # 15 significant digits


def test_a_given_timestamp_is_converted_to_utc_milliseconds(server, client):
    client.track("api.call", timestamp="2026-11-20T11:00:00.123456+01:00")
    assert server.stored[0]["timestamp"] == "2026-11-20T10:00:00.123Z"


def test_track_returns_at_once_and_the_background_thread_batches_by_size(server, make_client):
    client = make_client(batch_size=10, flush_interval=60)
    for i in range(25):
        client.track("api.call", attempt=1, endpoint=f"/e{i}")
    deadline = time.monotonic() + 5
    while len(server.stored) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(server.stored) >= 20  # two full batches went without waiting for the interval
    client.flush()
    assert len(server.stored) == 25
    assert all(len(r["events"]) <= 10 for r in server.requests)
    assert client.stats()["sent"] == 25 and client.stats()["queued"] == 0


def test_the_background_thread_flushes_by_time(server, make_client):
    client = make_client(batch_size=500, flush_interval=0.05)
    client.track("api.call")
    deadline = time.monotonic() + 5
    while not server.stored and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(server.stored) == 1


def test_network_errors_5xx_and_429_are_retried_with_the_same_ids(server, make_client):
    client = make_client(flush_interval=60)

    def connection_refused():
        raise httpx.ConnectError("refused")

    server.faults = [
        connection_refused,
        lambda: httpx.Response(503),
        lambda: httpx.Response(429, headers={"Retry-After": "0"}),
    ]
    for _ in range(3):
        client.track("api.call")
    client.flush()

    assert len(server.stored) == 3
    stats = client.stats()
    assert stats["retries"] == 3 and stats["sent"] == 3 and stats["failed"] == 0


def test_a_batch_stored_but_unanswered_is_a_duplicate_on_retry_never_counted_twice(
    server, make_client
):
    client = make_client(flush_interval=60)
    real = server.__call__

    calls = []

    def lost_answer(request):
        response = real(request)
        calls.append(response.status_code)
        if len(calls) == 1:
            raise httpx.ReadTimeout("answer lost")  # stored, but the client never hears
        return response

    client._http._transport = httpx.MockTransport(lost_answer)
    client.track("api.call")
    client.track("api.call")
    client.flush()

    assert len(server.stored) == 2
    assert client.stats()["sent"] == 2 and client.stats()["duplicates"] == 2


def test_retry_after_is_honoured(server, make_client):
    client = make_client(flush_interval=60)
    server.faults = [lambda: httpx.Response(429, headers={"Retry-After": "1"})]
    client.track("api.call")
    started = time.monotonic()
    client.flush()
    assert time.monotonic() - started >= 1
    assert len(server.stored) == 1


def test_retries_stop_after_max_retries_and_count_the_events_failed(server, make_client):
    client = make_client(flush_interval=60, max_retries=2)
    server.faults = [lambda: httpx.Response(502)] * 5
    client.track("api.call")
    client.flush()
    assert client.stats()["failed"] == 1 and client.stats()["retries"] == 2
    assert server.stored == []


def test_rejected_events_are_logged_with_their_codes_counted_and_not_retried(
    server, client, caplog
):
    server.reject = lambda event: "invalid" if event.get("endpoint") == "bad" else None
    client.track("api.call", endpoint="bad")
    client.track("api.call", endpoint="good")

    stats = client.stats()
    assert stats["rejected"] == 1 and stats["rejected_codes"] == {"invalid": 1}
    assert stats["sent"] == 1 and stats["retries"] == 0
    assert len(server.headers) == 2  # two sync sends, no resend
    assert "invalid" in caplog.text


def test_a_refused_request_is_not_retried(server, make_client):
    client = make_client(flush_interval=60)
    server.faults = [lambda: httpx.Response(401, json={"detail": "bad key"})]
    client.track("api.call")
    client.flush()
    assert client.stats()["failed"] == 1 and len(server.headers) == 1


def test_a_full_queue_drops_new_events_without_blocking(server, make_client):
    client = make_client(max_queue=5, flush_interval=60, batch_size=100)
    started = time.perf_counter()
    for _ in range(20):
        client.track("api.call")
    assert time.perf_counter() - started < 0.5
    assert client.stats()["dropped"] == 15 and client.stats()["queued"] == 5
    client.flush()
    assert len(server.stored) == 5


def test_close_flushes_what_is_queued(server, make_client):
    client = make_client(flush_interval=60)
    client.track("api.call")
    client.close()
    assert len(server.stored) == 1


def test_module_level_track_uses_the_default_client(server, make_client):
    client = make_client(sync=True)
    percall.set_client(client)
    try:
        percall.track("api.call", endpoint="/x")
    finally:
        percall.set_client(None)
    percall.track("api.call")  # no client: nothing happens
    assert len(server.stored) == 1


def test_span_times_a_block_and_parents_what_is_tracked_inside(server, client):
    with percall.context(tenant="globex"), client.span("tool.call", endpoint="x") as span:
        client.track("llm.call")
    inner, outer = server.stored
    assert outer["type"] == "tool.call" and "parent_span_id" not in outer  # a root span
    assert inner["trace_id"] == outer["trace_id"] == span.trace_id
    assert inner["parent_span_id"] == outer["span_id"]
    assert outer["tenant"] == inner["tenant"] == "globex"
    assert float(outer["latency_ms"]) >= 0


def test_a_span_that_raises_records_the_error(server, client):
    try:
        with client.span("tool.call"):
            raise TimeoutError
    except TimeoutError:
        pass
    assert server.stored[0]["properties"] == {"error.type": "TimeoutError"}


def test_close_keeps_retrying_a_batch_in_flight_until_the_shutdown_deadline(server, make_client):
    client = make_client(flush_interval=0.01, shutdown_timeout=5)
    server.faults = [lambda: httpx.Response(503)] * 3
    client.track("api.call")
    time.sleep(0.05)  # the flush thread is now retrying
    client.close()
    assert len(server.stored) == 1 and client.stats()["failed"] == 0


def test_type_may_be_given_by_keyword(server, client):
    client.track(type="api.call", endpoint="/x")
    assert server.stored[0]["type"] == "api.call"


def test_retry_after_as_an_http_date_and_as_seconds():
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime

    from percall.client import _retry_after

    later = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert 25 <= _retry_after(format_datetime(later, usegmt=True)) <= 31
    assert _retry_after("7") == 7.0
    assert _retry_after("soon") is None and _retry_after(None) is None


def test_a_batch_too_large_for_the_server_is_split(server, make_client):
    client = make_client(flush_interval=60)
    real = server.__call__

    def small_bodies_only(request):
        if request.content.count(b'"id":') > 2:
            return httpx.Response(413)
        return real(request)

    client._http._transport = httpx.MockTransport(small_bodies_only)
    for _ in range(7):
        client.track("api.call")
    client.flush()
    assert len(server.stored) == 7 and client.stats()["failed"] == 0


def test_a_forked_child_starts_with_an_empty_queue(server, make_client):
    import os

    client = make_client(flush_interval=60)
    client.track("api.call")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what the parent queued is the parent's to send
        os.write(write, str(client.stats()["queued"]).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 16) == b"0"
    client.flush()
    assert len(server.stored) == 1


def test_events_still_queued_are_sent_at_interpreter_exit(tmp_path):
    import subprocess
    import sys
    import textwrap

    out = tmp_path / "sent.jsonl"
    script = textwrap.dedent(
        f"""
        import httpx, percall

        def answer(request):
            with open({str(out)!r}, "ab") as f:
                f.write(request.content + b"\\n")
            return httpx.Response(200, json={{"accepted": 1, "results": []}})

        client = percall.Percall("http://percall.test", "k", flush_interval=3600,
                                 transport=httpx.MockTransport(answer))
        client.track("api.call", endpoint="/bye")
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    (line,) = out.read_bytes().splitlines()
    assert json.loads(line)["events"][0]["endpoint"] == "/bye"
