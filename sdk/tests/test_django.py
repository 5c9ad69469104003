"""The Django middleware: one event per request, the URL pattern as endpoint."""

from __future__ import annotations

import sys

import pytest

django = pytest.importorskip("django", reason="Django is not installed")
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        SECRET_KEY="test",
        MIDDLEWARE=["percall.integrations.django.PercallMiddleware"],
        PERCALL={"tenant": "header:X-Tenant", "exclude": ["/healthz"]},
        INSTALLED_APPS=[],
        DATABASES={},
    )
    django.setup()

from django.http import HttpResponse, JsonResponse
from django.test import Client
from django.urls import path

import percall


def item(request, pk):
    percall.track("tool.call", endpoint="lookup")
    return JsonResponse({"id": pk})


def boom(request):
    raise RuntimeError("boom")


urlpatterns = [
    path("items/<int:pk>", item),
    path("boom", boom),
    path("healthz", lambda request: HttpResponse("ok")),
]
assert sys.modules[__name__]


@pytest.fixture
def default_client(client):
    percall.set_client(client)
    yield client
    percall.set_client(None)


def test_one_event_per_request_with_the_url_pattern(server, default_client):
    http = Client()
    response = http.post(
        "/items/42", data=b"12345", content_type="text/plain", headers={"X-Tenant": "globex"}
    )
    assert response.status_code == 200
    http.get("/healthz")

    tool, request = server.stored
    assert request["endpoint"] == "/items/<int:pk>" and request["status_code"] == 200
    assert request["tenant"] == tool["tenant"] == "globex"
    assert (request["bytes_in"], request["bytes_out"]) == (5, len(response.content))
    assert tool["parent_span_id"] == request["span_id"]
    assert request["properties"] == {"http.request.method": "POST"}


def test_an_error_is_recorded_as_500(server, default_client):
    Client(raise_request_exception=False).get("/boom")
    (event,) = server.stored
    assert event["status_code"] == 500 and event["endpoint"] == "/boom"


def test_an_unmatched_path_has_no_endpoint(server, default_client):
    Client().get("/nope")
    (event,) = server.stored
    assert event["status_code"] == 404 and "endpoint" not in event


def test_the_client_can_be_configured_in_settings(server):
    import httpx
    from django.test import RequestFactory, override_settings

    from percall.integrations.django import PercallMiddleware

    options = {
        "url": "http://percall.test",
        "api_key": "pc_x",
        "sync": True,
        "transport": httpx.MockTransport(server),
        "service": "web",
        "tenant": lambda request: "globex",
    }
    with override_settings(PERCALL=options):
        middleware = PercallMiddleware(lambda request: HttpResponse("ok"))
    try:
        middleware(RequestFactory().get("/anything"))
        (event,) = server.stored
        assert (event["service"], event["tenant"], event["status_code"]) == ("web", "globex", 200)
        assert server.headers[0]["authorization"] == "Bearer pc_x"
    finally:
        percall.get_client().close()
        percall.set_client(None)
