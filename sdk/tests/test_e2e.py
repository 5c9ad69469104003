"""End to end against a real Percall server started here: refused connections, 503s before and
after the server stored a batch, and lost answers make the SDK retry, and every event is still
stored exactly once."""

from __future__ import annotations

import sqlite3
import threading

import httpx
import pytest

import percall
from tests.percall_server import Unavailable, free_port, percall_server, tenant_create

pytestmark = pytest.mark.e2e

EVENTS_PER_THREAD = 300
THREADS = 4


@pytest.fixture(scope="module")
def server():  # overrides the fake server of conftest
    try:
        with percall_server() as running:
            tenant_create(running, "globex")
            yield running
    except Unavailable as exc:
        pytest.skip(f"no Percall server: {exc}")


class Faults(httpx.BaseTransport):
    """Forwards to the real server, except for the requests the plan says to break:

    - ``refused``: sent to a closed loopback port instead (a real refused connection);
    - ``503``: answered 503 without reaching the server;
    - ``stored-503``: the server stores the batch, the client is told 503;
    - ``lost``: the server stores the batch, the answer never arrives (read timeout).
    """

    def __init__(self, plan: list[str | None]) -> None:
        self.inner = httpx.HTTPTransport()
        self.plan = plan
        self.closed_port = free_port()
        self.lock = threading.Lock()
        self.seen: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            fault = self.plan.pop(0) if self.plan else None
            self.seen.append(fault)
        if fault == "refused":
            request.url = request.url.copy_with(port=self.closed_port)
            return self.inner.handle_request(request)
        if fault == "503":
            return httpx.Response(503, headers={"Retry-After": "0"})
        response = self.inner.handle_request(request)
        response.read()
        if fault == "stored-503":
            return httpx.Response(503)
        if fault == "lost":
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def stored_rows(database) -> list[tuple[str, int]]:
    with sqlite3.connect(database) as db:
        return db.execute(
            "SELECT event_id, json_extract(properties, '$.seq') FROM metering_event"
            " WHERE type = 'sdk.e2e'"
        ).fetchall()


def test_every_event_is_stored_exactly_once_through_failures_and_retries(server):
    plan = ["refused", "503", "stored-503", None, "lost", "refused", "stored-503"]
    faults = Faults(list(plan))
    client = percall.Percall(
        server.url,
        server.api_key,
        transport=faults,
        batch_size=100,
        flush_interval=0.05,
        backoff_base=0.01,
        backoff_max=0.05,
        service="e2e",
    )

    def work(thread: int) -> None:
        with percall.context(tenant="globex", feature=f"f{thread}", new_span=True):
            for i in range(EVENTS_PER_THREAD):
                client.track(
                    "sdk.e2e", seq=thread * EVENTS_PER_THREAD + i, input_tokens=i, cost=0.001
                )

    threads = [percall.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()

    total = THREADS * EVENTS_PER_THREAD
    stats = client.stats()
    assert faults.plan == [], "every planned fault was injected"
    assert stats["sent"] == total and stats["failed"] == 0 and stats["dropped"] == 0
    assert stats["rejected"] == 0 and stats["conflicts"] == 0
    assert stats["retries"] == sum(fault is not None for fault in plan)
    assert stats["duplicates"] > 0  # the batches stored before their answer was lost

    rows = stored_rows(server.database)
    ids = [event_id for event_id, _ in rows]
    seqs = sorted(seq for _, seq in rows)
    assert len(ids) == len(set(ids)) == total
    assert seqs == list(range(total))  # each event once: none lost, none twice


def test_a_rejected_event_is_counted_with_its_code_and_the_rest_stored(server):
    client = percall.Percall(server.url, server.api_key, sync=True)
    client.track("sdk.e2e", tenant="nobody", seq=-1)
    client.track("sdk.e2e", tenant="globex", seq=-2)
    stats = client.stats()
    client.close()
    assert stats["rejected_codes"] == {"unknown_tenant": 1}
    assert stats["sent"] == 1
