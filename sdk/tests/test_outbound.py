"""Outbound HTTP: httpx transport and hooks, requests adapter; traceparent, attempts, provider."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

import percall
from percall.integrations._outbound import default_route
from percall.integrations.httpx import AsyncPercallTransport, PercallTransport, instrument

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def upstream(statuses):
    """A fake upstream answering with ``statuses`` in turn; records the headers it got."""
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        status = statuses.pop(0) if statuses else 200
        if status == "refused":
            raise httpx.ConnectError("refused")
        return httpx.Response(status, content=b"hello", headers={"content-length": "5"})

    return handler, seen


def test_each_attempt_is_an_external_child_span_with_provider_attempt_and_traceparent(
    server, client
):
    handler, seen = upstream(["refused", 503, 200])
    http = httpx.Client(transport=PercallTransport(httpx.MockTransport(handler), client=client))
    with percall.context(tenant="globex", traceparent=TRACEPARENT) as scope:
        for _ in range(3):
            try:
                http.post("https://api.stripe.com/v1/charges/ch_3NabcdefghijKLMN", content=b"x=1")
            except httpx.ConnectError:
                pass
        http.get("https://api.stripe.com/v1/balance")  # a new request: attempt 1

    events = server.stored
    assert [e.get("status_code") for e in events] == [None, 503, 200, 200]
    assert [e["attempt"] for e in events] == [1, 2, 3, 1]
    assert events[0]["properties"]["error.type"] == "ConnectError"
    for event, headers in zip(events, seen, strict=True):
        assert event["external"] is True and event["provider"] == "stripe"
        assert event["tenant"] == "globex"
        assert event["trace_id"] == scope.trace_id and event["parent_span_id"] == scope.span_id
        assert headers["traceparent"] == f"00-{scope.trace_id}-{event['span_id']}-01"
    assert events[0]["endpoint"] == "/v1/charges/{id}"
    assert events[2]["bytes_out"] == 3 and events[2]["bytes_in"] == 5


def test_a_repeat_after_success_is_a_first_attempt(server, client):
    handler, _ = upstream([200, 200])
    http = httpx.Client(transport=PercallTransport(httpx.MockTransport(handler), client=client))
    http.get("https://example.com/a")
    http.get("https://example.com/a")
    assert [e["attempt"] for e in server.stored] == [1, 1]
    assert server.stored[0]["provider"] == "example.com"  # unmapped hosts name themselves


def test_sdk_retry_headers_number_attempts_and_hosts_map_to_providers(server, client):
    handler, _ = upstream([])
    http = httpx.Client(
        transport=PercallTransport(
            httpx.MockTransport(handler), client=client, providers={"internal.svc": "search"}
        )
    )
    http.post(
        "https://api.openai.com/v1/chat/completions", headers={"x-stainless-retry-count": "2"}
    )
    http.get("https://eu.internal.svc/q")
    first, second = server.stored
    assert (first["provider"], first["attempt"]) == ("openai", 3)
    assert second["provider"] == "search"


def test_event_hooks_on_an_existing_client(server, client):
    handler, seen = upstream([])
    http = instrument(httpx.Client(transport=httpx.MockTransport(handler)), client=client)
    http.get("https://api.anthropic.com/v1/models")
    (event,) = server.stored
    assert event["provider"] == "anthropic" and event["status_code"] == 200
    assert seen[0]["traceparent"].split("-")[2] == event["span_id"]


def test_async_transport_and_hooks(server, client):
    async def main():
        async def handler(request):
            return httpx.Response(200)

        async with httpx.AsyncClient(
            transport=AsyncPercallTransport(httpx.MockTransport(handler), client=client)
        ) as http:
            await http.get("https://api.openai.com/v1/models")
        async with instrument(
            httpx.AsyncClient(transport=httpx.MockTransport(handler)), client=client
        ) as http:
            await http.get("https://api.openai.com/v1/files")

    asyncio.run(main())
    assert [e["endpoint"] for e in server.stored] == ["/v1/models", "/v1/files"]


def test_default_route_replaces_ids():
    assert default_route("/v1/users/42/orders/7f3c9a2e-1b4d-4c8e-9f1a-2b3c4d5e6f70") == (
        "/v1/users/{id}/orders/{id}"
    )
    assert default_route("/v1/chat/completions") == "/v1/chat/completions"
    assert default_route("/v1/chat_completions/generate_embeddings_in_batches") == (
        "/v1/chat_completions/generate_embeddings_in_batches"
    )
    assert default_route("/v1/charges/ch_3NabcdefghijKLMN") == "/v1/charges/{id}"


@pytest.fixture
def local_upstream():
    """A loopback HTTP server answering 503 twice, then 200 (for urllib3's own retries)."""
    statuses = [503, 503]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status = statuses.pop(0) if statuses else 200
            body = b"ok"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_requests_session_counts_urllib3_retries_as_attempts(server, client, local_upstream):
    requests = pytest.importorskip("requests")
    from urllib3.util.retry import Retry

    from percall.integrations.requests import instrument as instrument_requests

    session = requests.Session()
    retry = Retry(total=3, status_forcelist=[503], backoff_factor=0, allowed_methods=None)
    session.mount("http://", requests.adapters.HTTPAdapter(max_retries=retry))
    instrument_requests(session, client=client)
    with percall.context(tenant="globex"):
        response = session.get(f"{local_upstream}/v1/items/123")
    assert response.status_code == 200

    events = server.stored
    assert [(e["attempt"], e.get("status_code")) for e in events] == [(1, 503), (2, 503), (3, 200)]
    assert len({e["span_id"] for e in events}) == 3
    assert all(e["endpoint"] == "/v1/items/{id}" and e["tenant"] == "globex" for e in events)
    assert "traceparent" in response.request.headers
