"""Budgets over the API: create, list with status, read, change, deactivate, alerts; bad input
names the field and stores nothing; tenant-bound keys manage only their own tenant's budgets."""

import json
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from apps.alerts.models import Budget
from apps.alerts.services.budgets.evaluate import budgets_evaluate
from apps.alerts.services.budgets.manage import budget_create
from apps.tenants.services.tenants import cost_center_create
from tests.alerts.test_budgets import spend
from tests.billing.billing_setup import catalog_load

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(make_tenant, make_key, client, clock):
    catalog_load()

    class Caller:
        def __init__(self, key: str) -> None:
            self.headers = {"Authorization": f"Bearer {key}"}

        def get(self, path, params=None):
            return client.get(path, params or {}, headers=self.headers)

        def send(self, method, path, body=None):
            return getattr(client, method)(
                path, json.dumps(body or {}), content_type="application/json", headers=self.headers
            )

    class World:
        acme = make_tenant("acme")
        globex = make_tenant("globex", currency="EUR")
        operator = Caller(make_key())
        alpha = Caller(make_key(tenant=acme))
        alpha_reader = Caller(make_key(scopes=("read",), tenant=acme))

    cost_center_create(code="ml", name="Machine learning")
    return World


BODY = {
    "name": "acme spend",
    "scope": "tenant",
    "tenant": "acme",
    "measure": "cost",
    "amount": "100",
}


def test_create_read_list_change_and_deactivate(world):
    created = world.operator.send("post", "/api/v1/budgets", {**BODY, "action": "throttle"})
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["tenant"], body["currency"], body["thresholds"], body["status"]) == (
        "acme",
        "USD",  # the operator currency, filled in
        [70, 90, 110],
        None,
    )
    spend("75.00")
    budgets_evaluate()
    detail = world.operator.get(f"/api/v1/budgets/{body['id']}").json()
    assert detail["status"]["percent"] == "75.00"
    assert detail["status"]["crossed"] == [70]
    assert detail["status"]["measured"] == "75.000000000000"
    listed = world.operator.get("/api/v1/budgets").json()["results"]
    assert [b["id"] for b in listed] == [body["id"]]

    changed = world.operator.send(
        "patch", f"/api/v1/budgets/{body['id']}", {"amount": "50", "thresholds": [50, 100]}
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["amount"], changed.json()["thresholds"]) == (
        "50.000000000000",
        [50, 100],
    )

    alerts = world.operator.get(f"/api/v1/budgets/{body['id']}/alerts").json()["results"]
    assert [(a["kind"], a["threshold"], a["percent"]) for a in alerts] == [
        ("threshold_crossed", 70, "75.00")
    ]
    gone = world.operator.send("delete", f"/api/v1/budgets/{body['id']}")
    assert gone.status_code == 200 and gone.json()["active"] is False
    assert world.operator.get("/api/v1/budgets", {"active": "true"}).json()["results"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"scope": "galaxy"}, "scope"),
        ({"measure": "vibes"}, "measure"),
        ({"amount": "-5"}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"tenant": None, "scope": "tenant"}, "tenant"),
        ({"scope": "feature", "tenant": None}, "scope_value"),
        ({"scope": "cost_center", "tenant": None}, "cost_center"),
        (
            {"scope": "cost_center", "tenant": None, "cost_center": "ml", "action": "throttle"},
            "action",
        ),
        ({"scope": "cost_center", "tenant": None, "cost_center": "nope"}, "cost_center"),
        ({"measure": "usage"}, "meter"),
        ({"measure": "usage", "meter": "seats"}, "meter"),  # a latest meter: not additive
        ({"measure": "usage", "meter": "nope"}, "meter"),
        ({"measure": "billed_amount", "scope": "feature", "scope_value": "chat"}, "measure"),
        ({"currency": "EUR"}, "currency"),
        ({"currency": "XXQ"}, "currency"),
        ({"thresholds": [90, 70]}, "thresholds[1]"),
        ({"thresholds": [0, 50]}, "thresholds[0]"),
        ({"thresholds": [70, 70.5]}, "thresholds[1]"),
        ({"thresholds": []}, "thresholds"),
        ({"period": "custom"}, "period_start"),
        (
            {"period": "custom", "period_start": "2026-11-10", "period_end": "2026-11-01"},
            "period_end",
        ),
        ({"period": "weekly"}, "period"),
        ({"action": "explode"}, "action"),
        ({"notify_emails": ["ok@example.com", "not-an-email"]}, "notify_emails[1]"),
        ({"name": ""}, "name"),
        ({"scope": "feature", "tenant": None, "scope_value": "f" * 201}, "scope_value"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(world, change, field):
    body = {**BODY, **change}
    body = {k: v for k, v in body.items() if v is not None}
    response = world.operator.send("post", "/api/v1/budgets", body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field, response.json()
    assert not Budget.objects.exists()


def test_what_defines_a_budget_cannot_be_patched(world):
    budget = world.operator.send("post", "/api/v1/budgets", BODY).json()
    response = world.operator.send("patch", f"/api/v1/budgets/{budget['id']}", {"scope": "feature"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "scope"
    bad = world.operator.send("patch", f"/api/v1/budgets/{budget['id']}", {"thresholds": [5, 1]})
    assert bad.json()["error"]["field"] == "thresholds[1]"
    assert Budget.objects.get().thresholds == [70, 90, 110]


def test_a_tenant_key_manages_only_its_own_tenants_budgets(world):
    globex_budget = budget_create(
        name="globex", scope="tenant", tenant=world.globex, measure="cost", amount=D("10")
    )
    operator_wide = budget_create(
        name="chat", scope="feature", scope_value="chat", measure="cost", amount=D("10")
    )
    # The tenant is forced to its own: a feature budget of acme's chat
    unnamed = {k: v for k, v in BODY.items() if k != "tenant"}
    own = world.alpha.send(
        "post", "/api/v1/budgets", {**unnamed, "scope": "feature", "scope_value": "chat"}
    )
    assert own.status_code == 201, own.content
    assert own.json()["tenant"] == "acme"
    refused = world.alpha.send("post", "/api/v1/budgets", {**BODY, "tenant": "globex"})
    assert refused.status_code == 404 and "globex" in refused.json()["error"]["message"]
    center = world.alpha.send(
        "post", "/api/v1/budgets", {**BODY, "scope": "cost_center", "cost_center": "ml"}
    )
    assert center.status_code == 400 and center.json()["error"]["field"] == "scope"
    assert Budget.objects.filter(tenant=world.globex).count() == 1

    listed = world.alpha.get("/api/v1/budgets").json()["results"]
    assert [b["id"] for b in listed] == [own.json()["id"]]
    for other in (globex_budget, operator_wide):
        for method, suffix in (("get", ""), ("get", "/alerts"), ("patch", ""), ("delete", "")):
            url = f"/api/v1/budgets/{other.id}{suffix}"
            response = (
                world.alpha.get(url)
                if method == "get"
                else world.alpha.send(method, url, {"name": "x"})
            )
            assert response.status_code == 404, (method, suffix, response.content)
        other.refresh_from_db()
        assert other.active and other.name in ("globex", "chat")
    assert world.operator.get("/api/v1/budgets", {"tenant": "globex"}).json()["results"][0][
        "id"
    ] == str(globex_budget.id)


def test_a_read_key_reads_but_does_not_change(world):
    budget = world.operator.send("post", "/api/v1/budgets", BODY).json()
    assert world.alpha_reader.get(f"/api/v1/budgets/{budget['id']}").status_code == 200
    denied = world.alpha_reader.send("patch", f"/api/v1/budgets/{budget['id']}", {"name": "x"})
    assert denied.status_code == 403
    assert world.alpha_reader.send("post", "/api/v1/budgets", BODY).status_code == 403
