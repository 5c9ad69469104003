"""Mass assignment: a write that names a field it does not take is refused, whole.

Every API write endpoint answers 400 naming the first unexpected field (``tenant``, ``status``,
``balance``, ``is_superuser``...) and changes nothing; the same body without it succeeds.
``WRITES`` lists every write handler of the API; a new one without a row fails
``test_every_api_write_is_in_the_table``. Portal forms take HTML form posts, where unknown keys
are ignored: posting them changes nothing beyond the form's own fields (docs/portal.md).
"""

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client
from rest_framework import serializers
from rest_framework.views import APIView

from apps.alerts.models import WebhookEndpoint
from apps.billing.models import CreditGrant, Invoice
from apps.billing.services.subscriptions import subscription_cancel
from apps.core.api.serializers import StrictInput
from apps.portal.access import SESSION_TENANT
from apps.tenants.models import ApiKey, Membership
from apps.tenants.services.api_keys import api_key_create
from tests.security.routes import routes
from tests.security.world import NOW, World, snapshot

__all__ = ["NOW"]

EXTRAS = (
    "tenant", "tenant_id", "status", "balance", "amount", "remaining_amount", "is_staff",
    "is_superuser", "owner", "id",
)  # fmt: skip


@dataclass(frozen=True)
class Write:
    """One API write: its route, method, the path for A's objects, and a body it accepts."""

    route: str
    method: str
    path: Callable[[World], str]
    body: Callable[[World], dict] = lambda w: {}
    operator: bool = False  # the operator's key: tenant-bound keys get 403 here
    headers: dict[str, str] = field(default_factory=dict)
    takes: tuple[str, ...] = ()  # optional fields it declares, left out of ``body``
    prepare: Callable[[World], Any] = lambda w: None  # so that ``body`` can be taken
    # What the plain body answers when it cannot be taken in this world (a draft whose period
    # is not over): anything but a refused field.
    taken: bool = True


WRITES = [
    Write("api/v1/tenants", "post", lambda w: "/api/v1/tenants",
          lambda w: {"external_id": "new-co", "name": "New Co", "currency": "USD"},
          operator=True),
    Write("api/v1/subscriptions", "post", lambda w: "/api/v1/subscriptions",
          lambda w: {"tenant": "acorn", "plan": "pro", "start": "2027-02-01T00:00:00Z"},
          prepare=lambda w: subscription_cancel(subscription_id=w.a.subscription.id,
                                                immediately=True)),
    Write("api/v1/subscriptions/<uuid:subscription_id>/plan", "post",
          lambda w: f"/api/v1/subscriptions/{w.a.subscription.id}/plan", lambda w: {"plan": "pro"}),
    Write("api/v1/subscriptions/<uuid:subscription_id>/cancel", "post",
          lambda w: f"/api/v1/subscriptions/{w.a.subscription.id}/cancel",
          lambda w: {"immediately": False}),
    Write("api/v1/invoices/<uuid:invoice_id>/finalize", "post",
          lambda w: f"/api/v1/invoices/{w.a.draft.id}/finalize", taken=False, operator=True),
    Write("api/v1/invoices/<uuid:invoice_id>/void", "post",
          lambda w: f"/api/v1/invoices/{w.a.invoice.id}/void", lambda w: {"reason": "typo"},
          operator=True),
    Write("api/v1/invoices/<uuid:invoice_id>/mark-paid", "post",
          lambda w: f"/api/v1/invoices/{w.a.invoice.id}/mark-paid", operator=True),
    Write("api/v1/invoices/<uuid:invoice_id>/credit-notes", "post",
          lambda w: f"/api/v1/invoices/{w.a.invoice.id}/credit-notes",
          lambda w: {"amount": "1.00", "reason": "goodwill"}, operator=True),
    Write("api/v1/tenants/<str:external_id>/credit-purchases", "post",
          lambda w: "/api/v1/tenants/acorn/credit-purchases", lambda w: {"pack": "pack-100"},
          headers={"Idempotency-Key": "mass-1"}),
    Write("api/v1/webhooks/endpoints", "post", lambda w: "/api/v1/webhooks/endpoints",
          lambda w: {"url": "https://acorn.example/new"}, takes=("tenant",)),
    Write("api/v1/webhooks/endpoints/<str:endpoint_id>", "delete",
          lambda w: f"/api/v1/webhooks/endpoints/{w.a.endpoint.id}"),
    Write("api/v1/webhooks/endpoints/<str:endpoint_id>/rotate-secret", "post",
          lambda w: f"/api/v1/webhooks/endpoints/{w.a.endpoint.id}/rotate-secret"),
    Write("api/v1/webhooks/endpoints/<str:endpoint_id>/deliveries/<str:delivery_id>/redeliver",
          "post",
          lambda w: f"/api/v1/webhooks/endpoints/{w.a.endpoint.id}/deliveries/"
          f"{w.a.delivery.id}/redeliver"),
    Write("api/v1/budgets", "post", lambda w: "/api/v1/budgets",
          lambda w: {"name": "more", "scope": "tenant", "measure": "usage", "meter": "calls",
                     "amount": "5"}, takes=("tenant",)),
    Write("api/v1/budgets/<str:budget_id>", "patch",
          lambda w: f"/api/v1/budgets/{w.a.budget.id}", lambda w: {"name": "renamed"}),
    Write("api/v1/budgets/<str:budget_id>", "delete",
          lambda w: f"/api/v1/budgets/{w.a.budget.id}"),
    Write("api/v1/leakage/scans", "post", lambda w: "/api/v1/leakage/scans",
          lambda w: {"period": "2026-11"}, operator=True, takes=("tenant",)),
    Write("api/v1/leakage/findings/<str:finding_id>/acknowledge", "post",
          lambda w: f"/api/v1/leakage/findings/{w.a.finding.id}/acknowledge", operator=True),
    Write("api/v1/leakage/findings/<str:finding_id>/resolve", "post",
          lambda w: f"/api/v1/leakage/findings/{w.a.finding.id}/resolve",
          lambda w: {"reason": "priced now"}, operator=True),
    Write("api/v1/statements/run", "post", lambda w: "/api/v1/statements/run?period=2026-11",
          operator=True),
    Write("api/v1/statements/<str:statement_id>/issue", "post",
          lambda w: f"/api/v1/statements/{w.statement.id}/issue", operator=True),
    Write("api/v1/anomalies/<str:anomaly_id>/acknowledge", "post",
          lambda w: f"/api/v1/anomalies/{w.a.anomaly.id}/acknowledge", operator=True),
    Write("api/v1/anomalies/<str:anomaly_id>/resolve", "post",
          lambda w: f"/api/v1/anomalies/{w.a.anomaly.id}/resolve", operator=True),
]  # fmt: skip
# Writes whose body is not a serializer's: a document or a batch, strict in their own parser
# (tested below and in tests/metering, tests/catalog); corrections need an issued statement.
OWN_PARSERS = {
    ("api/v1/events", "post"),
    ("api/v1/catalog/apply", "post"),
    ("api/v1/statements/<str:statement_id>/corrections", "post"),
}


def _key(w: World, write: Write) -> str:
    if write.operator:
        return api_key_create(name="operator", scopes=["ingest", "read", "admin"]).plaintext
    return w.a.key.plaintext


@pytest.mark.parametrize("write", WRITES, ids=[f"{w.method} {w.route}" for w in WRITES])
def test_an_unexpected_field_is_refused_and_changes_nothing(world, write):
    key = _key(world, write)
    client = Client()
    headers = {"Authorization": f"Bearer {key}", **write.headers}

    def send(body: dict):
        path = write.path(world)
        return client.generic(
            write.method.upper(), path, json.dumps(body), "application/json", headers=headers
        )

    write.prepare(world)
    body = write.body(world)
    values = {"tenant": "bramble-7f3e", "tenant_id": str(world.b.tenant.id), "status": "paid",
              "balance": "1000000", "amount": "0", "remaining_amount": "1000000",
              "is_staff": True, "is_superuser": True, "owner": world.b_owner.pk,
              "id": str(world.b.invoice.id)}  # fmt: skip
    before = snapshot()
    for extra in EXTRAS:
        # A field the endpoint does take is a field, not an extra: sent unchanged.
        if extra in body or extra in write.takes:
            continue
        response = send({**body, extra: values[extra]})

        assert response.status_code == 400, (extra, response.content)
        error = response.json()["error"]
        assert error["field"] == extra
        assert error["message"].startswith(f"{extra}: ")
        assert "bramble" not in response.content.decode().replace("bramble-7f3e", "")
    assert snapshot() == before
    # Control: the same body without the extras is taken.
    response = send(body)
    if write.taken:
        assert response.status_code < 300, response.content
    else:
        assert response.json()["error"].get("field") not in EXTRAS


def test_every_api_write_is_in_the_table():
    handlers = set()
    for route in routes():
        view = getattr(route.pattern.callback, "view_class", None)
        if route.surface != "api/v1/" or view is None or not issubclass(view, APIView):
            continue
        for method in ("post", "put", "patch", "delete"):
            if hasattr(view, method):
                handlers.add((route.text, method))
    assert handlers == {(w.route, w.method) for w in WRITES} | OWN_PARSERS


def test_every_input_serializer_is_strict():
    """Input serializers (``*In``, ``*Input``) of every app's API refuse undeclared keys."""
    import importlib
    import pkgutil

    import apps

    found = []
    for module_info in pkgutil.walk_packages(apps.__path__, "apps."):
        if ".api" not in module_info.name:
            continue
        module = importlib.import_module(module_info.name)
        for name, value in inspect.getmembers(module, inspect.isclass):
            if value.__module__ != module.__name__:
                continue
            if issubclass(value, serializers.Serializer) and name.endswith(("In", "Input")):
                found.append(value)
                assert issubclass(value, StrictInput), f"{module.__name__}.{name}"
    assert len(found) >= 14


def test_a_budget_patch_says_why_a_defining_field_cannot_change(world):
    client = Client()
    response = client.patch(
        f"/api/v1/budgets/{world.a.budget.id}",
        json.dumps({"measure": "cost"}),
        "application/json",
        headers={"Authorization": f"Bearer {world.a.key.plaintext}"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "measure"
    assert "cannot be changed" in error["message"]


def test_an_event_batch_refuses_unexpected_fields(world):
    client = Client()
    headers = {"Authorization": f"Bearer {world.a.key.plaintext}"}
    event = {"id": "mass-1", "type": "api.call", "timestamp": "2026-11-20T10:00:00Z"}
    before = snapshot()

    batch = client.post(
        "/api/v1/events",
        json.dumps({"events": [event], "tenant_id": str(world.b.tenant.id)}),
        "application/json",
        headers=headers,
    )
    one = client.post(
        "/api/v1/events",
        json.dumps({"events": [{**event, "tenant_id": str(world.b.tenant.id)}]}),
        "application/json",
        headers=headers,
    )

    assert batch.status_code == 400, batch.content
    assert "tenant_id" in batch.json()["error"]["message"]
    assert one.status_code == 207, one.content
    (result,) = one.json()["results"]
    assert "tenant_id" in result["message"]
    assert one.json()["accepted"] == 0
    changed = [name for name, rows in snapshot().items() if rows != before[name]]
    assert set(changed) <= {"metering.IngestBatch", "metering.IngestTally"}


# --- portal forms ----------------------------------------------------------------------------

FORM_EXTRAS = {
    "tenant": None,  # filled with B's id
    "tenant_id": None,
    "status": "paid",
    "balance": "1000000",
    "amount": "0",
    "remaining_amount": "1000000",
    "is_staff": "on",
    "is_superuser": "on",
    "owner": "1",
    "id": "1",
    "role": "owner",
    "scopes": "admin",
}


def _portal(world: World) -> Client:
    client = Client()
    client.force_login(world.a_owner)
    session = client.session
    session[SESSION_TENANT] = str(world.a.tenant.id)
    session.save()
    return client


def _extras(world: World, form: dict) -> dict:
    extras = {k: v for k, v in FORM_EXTRAS.items() if k not in form}
    for name in ("tenant", "tenant_id"):
        if name in extras:
            extras[name] = str(world.b.tenant.id)
    return extras


def test_a_new_key_takes_only_the_forms_fields(world):
    form = {"name": "ci", "scopes": "read"}
    response = _portal(world).post("/portal/keys/", {**form, **_extras(world, form)})

    assert response.status_code == 200
    key = ApiKey.objects.get(name="ci")
    assert (key.tenant_id, key.scopes, key.revoked_at) == (world.a.tenant.id, ["read"], None)
    assert not ApiKey.objects.filter(tenant=world.b.tenant, name="ci").exists()
    world.a_owner.refresh_from_db()
    assert not (world.a_owner.is_staff or world.a_owner.is_superuser)


def test_a_new_webhook_endpoint_takes_only_the_forms_fields(world):
    form = {"url": "https://acorn.example/new", "description": "mine"}
    response = _portal(world).post("/portal/webhooks/", {**form, **_extras(world, form)})

    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get(url="https://acorn.example/new")
    assert (endpoint.tenant_id, endpoint.active, endpoint.description) == (
        world.a.tenant.id,
        True,
        "mine",
    )
    assert WebhookEndpoint.objects.filter(tenant=world.b.tenant).count() == 1


def test_a_pack_bought_in_the_portal_costs_its_price_whatever_else_is_posted(world):
    form = {"pack": "pack-100", "token": "6f1c2d3e-0000-4000-8000-000000000001"}
    grants_before = set(CreditGrant.objects.values_list("id", flat=True))
    b_before = snapshot()["billing.CreditGrant"]

    response = _portal(world).post("/portal/credits/buy/", {**form, **_extras(world, form)})

    assert response.status_code == 302
    invoice = Invoice.objects.get(kind="credit_purchase")
    (grant,) = CreditGrant.objects.exclude(id__in=grants_before)
    assert (invoice.tenant_id, invoice.total_amount) == (world.a.tenant.id, 90)
    assert (grant.tenant_id, grant.amount, grant.remaining_amount) == (world.a.tenant.id, 100, 100)
    b_rows = [r for r in b_before if r["tenant_id"] == world.b.tenant.id]
    after = [r for r in snapshot()["billing.CreditGrant"] if r["tenant_id"] == world.b.tenant.id]
    assert after == b_rows


def test_an_invitation_takes_only_the_forms_fields(world, mailoutbox):
    form = {"email": "new@acorn.example", "role": "viewer"}
    response = _portal(world).post("/portal/team/", {**form, **_extras(world, form)})

    assert response.status_code == 302
    (membership,) = Membership.objects.filter(user__email="new@acorn.example")
    assert (membership.tenant_id, membership.role) == (world.a.tenant.id, "viewer")
    assert not (membership.user.is_staff or membership.user.is_superuser)


def test_a_role_change_takes_only_the_forms_fields(world):
    member = Membership.objects.create(
        user=world.b_owner.__class__.objects.create_user("vic", "vic@acorn.example", "x"),
        tenant=world.a.tenant,
        role="viewer",
    )
    b_team = list(Membership.objects.filter(tenant=world.b.tenant).values())
    form = {"role": "billing"}

    response = _portal(world).post(
        f"/portal/team/{member.id}/role/", {**form, **_extras(world, form)}
    )

    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.tenant_id, member.role) == (world.a.tenant.id, "billing")
    assert list(Membership.objects.filter(tenant=world.b.tenant).values()) == b_team
    assert not (member.user.is_staff or member.user.is_superuser)
