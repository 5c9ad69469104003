"""The ASGI middleware on Starlette (FastAPI's base): one event per request."""

from __future__ import annotations

import pytest

starlette = pytest.importorskip(
    "starlette", reason="starlette is an SDK test extra: pip install -e sdk[dev]"
)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from percall.integrations.asgi import PercallMiddleware
from percall.tenants import from_api_key, from_header

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def make_app(client, tenant):
    async def item(request):
        client.track("tool.call", endpoint="lookup")  # inherits tenant and trace
        return JSONResponse({"id": request.path_params["item_id"]})

    async def echo(request):
        body = await request.body()
        return PlainTextResponse(body.decode() * 2, status_code=201)

    async def boom(request):
        raise RuntimeError("boom")

    return Starlette(
        routes=[
            Route("/items/{item_id:int}", item),
            Mount("/v2", routes=[Route("/echo", echo, methods=["POST"])]),
            Route("/boom", boom),
            Route("/healthz", lambda request: PlainTextResponse("ok")),
        ],
        middleware=[
            Middleware(PercallMiddleware, client=client, tenant=tenant, exclude=["/healthz"])
        ],
    )


def test_one_event_per_request_with_the_route_template_status_latency_and_bytes(server, client):
    http = TestClient(make_app(client, from_header("X-Tenant")))
    assert http.get("/items/42", headers={"X-Tenant": "globex"}).status_code == 200
    assert http.post("/v2/echo", content=b"abc").status_code == 201
    assert http.get("/healthz").status_code == 200

    tool, item, echo = server.stored
    assert item["type"] == "api.call" and item["endpoint"] == "/items/{item_id}"
    assert item["status_code"] == 200 and item["tenant"] == "globex"
    assert float(item["latency_ms"]) > 0 and item["bytes_out"] == len(b'{"id":42}')
    assert item["properties"] == {"http.request.method": "GET"}
    assert tool["tenant"] == "globex" and tool["parent_span_id"] == item["span_id"]
    assert "parent_span_id" not in item  # no traceparent came in: the request is a root
    assert echo["endpoint"] == "/v2/echo" and echo["status_code"] == 201
    assert (echo["bytes_in"], echo["bytes_out"]) == (3, 6)
    assert "tenant" not in echo


def test_an_incoming_traceparent_parents_the_request_span(server, client):
    http = TestClient(make_app(client, None))
    http.get("/items/1", headers={"traceparent": TRACEPARENT})
    tool, item = server.stored
    assert item["trace_id"] == tool["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert item["parent_span_id"] == "00f067aa0ba902b7"


def test_a_failing_request_is_recorded_as_500_with_its_error(server, client):
    http = TestClient(make_app(client, None), raise_server_exceptions=False)
    assert http.get("/boom").status_code == 500
    (event,) = server.stored
    assert event["status_code"] == 500 and event["endpoint"] == "/boom"
    assert event["properties"]["error.type"] == "RuntimeError"


def test_the_tenant_from_an_api_key_lookup_is_asked_once_per_key(server, client):
    asked = []

    def lookup(key):
        asked.append(key)
        return {"k1": "globex"}.get(key)

    http = TestClient(make_app(client, from_api_key(lookup)))
    for _ in range(3):
        http.get("/items/1", headers={"Authorization": "Bearer k1"})
    assert asked == ["k1"]
    assert [e.get("tenant") for e in server.stored if e["type"] == "api.call"] == ["globex"] * 3


def test_fastapi_route_in_scope_is_used(server, client):
    fastapi = pytest.importorskip("fastapi", reason="fastapi is not installed")
    app = fastapi.FastAPI()

    @app.get("/users/{user_id}")
    def get_user(user_id: int):
        return {"id": user_id}

    app.add_middleware(PercallMiddleware, client=client)
    TestClient(app).get("/users/7")
    assert server.stored[0]["endpoint"] == "/users/{user_id}"


def test_an_outbound_call_made_while_handling_a_request_continues_its_trace(server, client):
    import httpx

    from percall.integrations.httpx import PercallTransport

    sent = []

    def upstream(request):
        sent.append(request.headers["traceparent"])
        return httpx.Response(200)

    http = httpx.Client(transport=PercallTransport(httpx.MockTransport(upstream), client=client))

    async def handler(request):
        http.get("https://api.openai.com/v1/models")
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/proxy", handler)],
        middleware=[Middleware(PercallMiddleware, client=client, tenant=from_header())],
    )
    TestClient(app).get("/proxy", headers={"traceparent": TRACEPARENT, "X-Tenant": "globex"})

    outbound, request = server.stored
    assert outbound["external"] is True and outbound["tenant"] == "globex"
    assert outbound["trace_id"] == request["trace_id"] == TRACEPARENT.split("-")[1]
    assert outbound["parent_span_id"] == request["span_id"]
    assert sent == [f"00-{outbound['trace_id']}-{outbound['span_id']}-01"]
