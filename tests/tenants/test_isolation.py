"""Tenant isolation of every API endpoint: a key bound to tenant A never sees or touches B.

Each route under api/v1 has a row in ISOLATION; a new endpoint without one fails
``test_every_api_route_has_an_isolation_check``.
"""

from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import URLResolver, get_resolver

from apps.metering.models import Event, EventKey
from apps.tenants.models import Tenant

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
DAY = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z"
HOUR = "2026-11-20T10:00:00Z"
B_SECRETS = ("Beta Secret Holdings", "beta-secret-model", "CHF")
# Rollups are computed when ingestion commits, so these tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True)


class World:
    """Tenants alpha (3 events) and beta (5 events); a key bound to alpha with every scope."""

    def __init__(self, make_tenant, make_key, api):
        self.alpha = make_tenant("alpha", name="Alpha Labs")
        self.beta = make_tenant("beta", name="Beta Secret Holdings", currency="CHF")
        self.operator = api(make_key())
        self.a = api(make_key(tenant=self.alpha))
        self._ingest(self.operator, "alpha", "a", 3, "gpt-4o")
        self._ingest(self.operator, "beta", "b", 5, "beta-secret-model")

    @staticmethod
    def _ingest(client, tenant, prefix, count, model):
        events = [
            {
                "id": f"{prefix}-{i}",
                "tenant": tenant,
                "type": "llm.call",
                "timestamp": f"2026-11-20T10:{i:02d}:00Z",
                "model": model,
                "input_tokens": 100,
            }
            for i in range(count)
        ]
        assert client.post("/api/v1/events", {"events": events}).json()["accepted"] == count

    def beta_rows(self):
        return sorted(Event.objects.filter(tenant=self.beta).values_list("event_id", flat=True))


@pytest.fixture
def world(make_tenant, make_key, api):
    with time_machine.travel(NOW, tick=False):
        yield World(make_tenant, make_key, api)


def assert_no_beta_data(response):
    text = response.content.decode()
    for secret in B_SECRETS:
        assert secret not in text


def usage_events(response):
    assert response.status_code == 200, response.content
    return sum(row["events"] for row in response.json()["data"])


# --- one check per route -------------------------------------------------------------------


def check_tenant_list(w: World):
    response = w.a.get("/api/v1/tenants")
    assert [t["external_id"] for t in response.json()] == ["alpha"]
    assert_no_beta_data(response)

    created = w.a.post("/api/v1/tenants", {"external_id": "c", "name": "C", "currency": "USD"})
    assert created.status_code == 403
    assert not Tenant.objects.filter(external_id="c").exists()
    # Control: the operator does see beta.
    assert len(w.operator.get("/api/v1/tenants").json()) == 2


def check_tenant_detail(w: World):
    foreign = w.a.get("/api/v1/tenants/beta")
    unknown = w.a.get("/api/v1/tenants/nobody")

    assert foreign.status_code == 404
    assert_no_beta_data(foreign)
    # A foreign tenant reads exactly like one that does not exist.
    assert foreign.content.decode() == unknown.content.decode().replace("nobody", "beta")
    assert w.a.get("/api/v1/tenants/alpha").status_code == 200
    assert w.operator.get("/api/v1/tenants/beta").status_code == 200


def check_events(w: World):
    before = w.beta_rows()
    foreign = {"id": "a-new", "tenant": "beta", "type": "llm.call", "input_tokens": 1}
    # beta's own event id, sent by alpha's key: a new alpha event, not a duplicate of beta's.
    reused = {"id": "b-0", "type": "llm.call", "input_tokens": 999}

    response = w.a.post("/api/v1/events", {"events": [foreign, reused]})

    assert response.status_code == 207
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["conflicts"]) == (1, 0, 0)
    assert [(r["index"], r["code"]) for r in body["results"]] == [(0, "tenant_mismatch")]
    assert w.beta_rows() == before
    assert EventKey.objects.filter(tenant=w.beta).count() == len(before)
    assert Event.objects.get(tenant=w.alpha, event_id="b-0").input_tokens == 999


def check_usage(w: World):
    foreign = w.a.get(f"/api/v1/usage?tenant=beta&{DAY}")
    assert foreign.status_code == 404
    assert_no_beta_data(foreign)

    assert usage_events(w.a.get(f"/api/v1/usage?{DAY}")) == 3
    grouped = w.a.get(f"/api/v1/usage?{DAY}&group_by=tenant,model")
    assert {(row["tenant"], row["model"]) for row in grouped.json()["data"]} == {
        ("alpha", "gpt-4o")
    }
    assert_no_beta_data(grouped)
    assert usage_events(w.operator.get(f"/api/v1/usage?tenant=beta&{DAY}")) == 5


def check_usage_check(w: World):
    foreign = w.a.get(f"/api/v1/usage/check?tenant=beta&hour={HOUR}")
    assert foreign.status_code == 404
    assert_no_beta_data(foreign)

    own = w.a.get(f"/api/v1/usage/check?hour={HOUR}")
    assert (own.json()["tenant"], own.json()["stored"]) == ("alpha", 3)
    control = w.operator.get(f"/api/v1/usage/check?tenant=beta&hour={HOUR}")
    assert control.json()["stored"] == 5


ISOLATION = {
    "api/v1/tenants": check_tenant_list,
    "api/v1/tenants/<str:external_id>": check_tenant_detail,
    "api/v1/events": check_events,
    "api/v1/usage": check_usage,
    "api/v1/usage/check": check_usage_check,
}


def api_routes() -> set[str]:
    """Every URL route under api/v1, as its full pattern text."""
    routes: set[str] = set()

    def walk(patterns, prefix):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            else:
                routes.add(route)

    walk(get_resolver().url_patterns, "")
    return {route for route in routes if route.startswith("api/v1/")}


@pytest.mark.django_db(transaction=False)
def test_every_api_route_has_an_isolation_check():
    assert api_routes() == set(ISOLATION)


@pytest.mark.parametrize("route", sorted(ISOLATION))
def test_a_tenant_bound_key_is_isolated(world, route):
    with time_machine.travel(NOW, tick=False):
        ISOLATION[route](world)
