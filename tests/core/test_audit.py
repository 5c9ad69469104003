"""The audit log: every money and configuration action writes one entry naming its actor, its
tenant and the values before and after; nothing can change or delete an entry; the API lists
them, scoped to the caller's tenant."""

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import DatabaseError, transaction

from apps.assurance.models import Finding
from apps.billing.models import Invoice
from apps.billing.services.credits import credit_grant_issue
from apps.billing.services.runs import billing_run
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.core.audit import audit_actor, audit_actor_current, audit_record
from apps.core.models import AuditEntry
from apps.metering.services.rollup import rollup_pending_run
from apps.tenants.services.api_keys import api_key_authenticate, api_key_revoke
from tests.billing.billing_setup import PER_CALL_CATALOG, subscribe
from tests.metering.ingesting import ingest_events

pytestmark = pytest.mark.django_db

CATALOG = PER_CALL_CATALOG
OCT = datetime(2026, 10, 1, tzinfo=UTC)


def apply(content: dict) -> None:
    catalog_apply(doc=catalog_parse(content=json.dumps(content)))


def prefix_of(plaintext: str) -> str:
    key = api_key_authenticate(plaintext=plaintext)
    assert key is not None
    return key.prefix


def entries(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


@pytest.fixture
def billed(make_tenant):
    """acme on 1.00 USD a call from October, 3 calls, 2.00 of credits, October finalized."""
    with time_machine.travel(datetime(2026, 10, 20, tzinfo=UTC), tick=False):
        apply(CATALOG)
        acme = make_tenant("acme", currency="USD")
        subscribe(acme, "calls", OCT)
        ingest_events(
            *(
                {"id": f"e{i}", "tenant": "acme", "type": "api.call",
                 "timestamp": f"2026-10-1{i}T10:00:00Z"}
                for i in range(3)
            )
        )  # fmt: skip
        rollup_pending_run()
        with audit_actor("cli:grant"):
            credit_grant_issue(
                tenant_id=acme.id, currency="USD", amount=Decimal("2.00"),
                effective_at=OCT, expires_at=None, reason="goodwill",
            )  # fmt: skip
    with time_machine.travel(datetime(2026, 11, 3, tzinfo=UTC), tick=False):
        billing_run(grace=None)
    return acme


def test_a_credit_grant_names_its_actor_tenant_and_amount(billed):
    (entry,) = entries("credit_grant.issue")
    assert (entry.actor, entry.tenant_id, entry.target_type) == (
        "cli:grant",
        billed.id,
        "credit_grant",
    )
    assert entry.before is None
    assert entry.after["amount"] == "2.00"
    assert entry.after["currency"] == "USD"
    assert entry.after["reason"] == "goodwill"


def test_a_billing_run_records_each_finalization_with_its_money(billed):
    invoice = Invoice.objects.get(tenant=billed, status=Invoice.Status.FINALIZED)
    (entry,) = entries("invoice.finalize")

    assert entry.target_id == str(invoice.id)
    assert entry.tenant_id == billed.id
    assert entry.actor == "system"  # a run outside any request or task
    assert entry.before == {"status": "draft"}
    # 3 calls at 1.00 = 3.00; 2.00 of credits; no tax: 1.00 to pay.
    assert entry.after == {
        "status": "finalized",
        "number": invoice.number,
        "currency": "USD",
        "subtotal_amount": "3.00",
        "credits_applied_amount": "2.00",
        "tax_amount": "0.00",
        "total_amount": "1.00",
    }


def test_a_void_over_the_api_names_the_key_and_the_refund(billed, make_key, api):
    key = make_key(scopes=("read", "admin"))
    invoice = Invoice.objects.get(tenant=billed, status=Invoice.Status.FINALIZED)
    client = api(key)

    answer = client.post(f"/api/v1/invoices/{invoice.id}/void", {"reason": "wrong plan"})

    assert answer.status_code == 200, answer.content
    (entry,) = entries("invoice.void")
    assert entry.actor == f"api-key:{prefix_of(key)}"
    assert entry.before["status"] == "finalized"
    assert entry.before["total_amount"] == "1.00"
    assert entry.after["status"] == "void"
    assert entry.after["reason"] == "wrong plan"
    assert entry.after["credits_refunded_amount"] == "2.00"
    assert entry.request_id == answer["X-Request-ID"]


def test_a_price_change_keeps_the_old_and_new_prices(db):
    with time_machine.travel(datetime(2026, 10, 20, tzinfo=UTC), tick=False):
        apply(CATALOG)
        changed = json.loads(json.dumps(CATALOG))
        changed["rate_cards"][0]["charges"][0]["unit_price"] = "1.25"
        apply(changed)
        apply(changed)  # unchanged: no entry

    created, updated = entries("rate_card_version.create") + entries("rate_card_version.update")
    assert created.before is None
    assert Decimal(created.after["charges"][0]["unit_price"]) == Decimal("1.00")
    assert Decimal(updated.before["charges"][0]["unit_price"]) == Decimal("1.00")
    assert Decimal(updated.after["charges"][0]["unit_price"]) == Decimal("1.25")
    assert len(entries("rate_card_version.update")) == 1
    assert [e.after["code"] for e in entries("plan.create")] == ["calls"]


def test_key_creation_and_revocation_are_recorded_without_the_secret(make_key):
    key = make_key(scopes=("read",), name="reporting")
    prefix = prefix_of(key)
    api_key_revoke(prefix=prefix)

    created, revoked = entries("api_key.create")[-1], entries("api_key.revoke")[-1]
    assert created.after == {"name": "reporting", "scopes": ["read"], "prefix": prefix}
    assert revoked.before == {"revoked_at": None} and revoked.after["revoked_at"]
    text = json.dumps([created.after, revoked.after])
    # The secret is everything after "<prefix>_"; it may itself hold "_" (URL-safe base64).
    secret = key.split(f"{prefix}_", 1)[1]
    assert len(secret) == 40
    assert secret not in text and key not in json.dumps(created.before)


def test_a_finding_resolved_over_the_api_is_recorded(make_tenant, make_key, api):
    acme = make_tenant("acme")
    finding = Finding.objects.create(
        category=Finding.Category.UNPRICED, tenant=acme, period_start=date(2026, 10, 1),
        subject="llm.call", quantity=Decimal(10), unit="events",
        amount_at_risk=Decimal("4.20"), currency="USD", basis=Finding.Basis.LIST_PRICE,
        first_seen_at=OCT, last_seen_at=OCT,
    )  # fmt: skip
    key = make_key(scopes=("read", "admin"))

    answer = api(key).post(
        f"/api/v1/leakage/findings/{finding.id}/resolve", {"reason": "priced in v2"}
    )

    assert answer.status_code == 200, answer.content
    (entry,) = entries("finding.resolve")
    assert entry.actor == f"api-key:{prefix_of(key)}"
    assert (entry.tenant_id, entry.before) == (acme.id, {"status": "open"})
    assert entry.after["status"] == "resolved"
    assert entry.after["reason"] == "priced in v2"
    assert Decimal(entry.after["amount_at_risk"]) == Decimal("4.20")


def test_entries_cannot_be_updated(make_tenant):
    entry = audit_record(action="test.thing", target_type="thing", target_id="1")

    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(id=entry.id).update(actor="someone else")
    with pytest.raises(DatabaseError), transaction.atomic():
        entry.actor = "someone else"
        entry.save()

    entry.refresh_from_db()
    assert entry.actor == "system"


@pytest.mark.postgres
def test_entries_cannot_be_deleted_on_postgres(make_tenant):
    entry = audit_record(action="test.thing", target_type="thing", target_id="1")

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(id=entry.id).delete()

    assert AuditEntry.objects.filter(id=entry.id).exists()


def test_the_api_lists_newest_first_filters_and_pages(billed, make_key, api):
    client = api(make_key(scopes=("read",)))

    page = client.get("/api/v1/audit?tenant=acme&limit=2").json()
    ids = [e["id"] for e in page["results"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 2
    rest = client.get(f"/api/v1/audit?tenant=acme&before_id={page['next_before_id']}").json()
    assert all(e["id"] < min(ids) for e in rest["results"])
    assert {e["tenant"] for e in page["results"] + rest["results"]} == {"acme"}

    invoice_only = client.get("/api/v1/audit?action=invoice").json()["results"]
    assert [e["action"] for e in invoice_only] == ["invoice.finalize"]
    assert invoice_only[0]["after"]["total_amount"] == "1.00"


def test_a_bad_filter_names_the_field(make_key, api):
    client = api(make_key(scopes=("read",)))

    answer = client.get("/api/v1/audit?since=yesterday")
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "since"
    answer = client.get("/api/v1/audit?limit=-3")
    assert (answer.status_code, answer.json()["error"]["field"]) == (400, "limit")
    answer = client.get("/api/v1/audit", {"limit": "\u00b2"})  # a digit, but not a decimal
    assert (answer.status_code, answer.json()["error"]["field"]) == (400, "limit")
    answer = client.get("/api/v1/audit", {"since": "9999-12-31T23:00:00-05:00"})  # past 9999 UTC
    assert (answer.status_code, answer.json()["error"]["field"]) == (400, "since")


def test_a_tenant_bound_key_sees_only_its_tenant(make_tenant, make_key, api):
    acme, other = make_tenant("acme"), make_tenant("other")
    credit_grant_issue(
        tenant_id=other.id, currency="USD", amount=Decimal("1.00"),
        effective_at=OCT, expires_at=None, reason="other's",
    )  # fmt: skip
    client = api(make_key(scopes=("read",), tenant=acme))

    results = client.get("/api/v1/audit").json()["results"]

    assert results and {e["tenant"] for e in results} == {"acme"}
    assert client.get("/api/v1/audit?tenant=other").status_code == 404


def test_a_tenant_reads_its_money_and_team_but_not_the_operators_notes(make_tenant, make_key, api):
    acme = make_tenant("acme")
    finding = Finding.objects.create(
        category=Finding.Category.UNPRICED, tenant=acme, period_start=date(2026, 10, 1),
        subject="llm.call", quantity=Decimal(10), unit="events",
        amount_at_risk=Decimal("5000.00"), currency="USD", basis=Finding.Basis.LIST_PRICE,
        first_seen_at=OCT, last_seen_at=OCT,
    )  # fmt: skip
    operator = make_key(scopes=("read", "admin"))
    api(operator).post(f"/api/v1/leakage/findings/{finding.id}/resolve", {"reason": "ok"})
    with audit_actor("user:finance@operator.example"):
        credit_grant_issue(
            tenant_id=acme.id, currency="USD", amount=Decimal("3.00"),
            effective_at=OCT, expires_at=None, reason="goodwill",
        )  # fmt: skip
    own_key = make_key(scopes=("read",), tenant=acme)

    results = api(own_key).get("/api/v1/audit").json()["results"]

    actions = {e["action"] for e in results}
    assert "finding.resolve" not in actions and "credit_grant.issue" in actions
    grant = next(e for e in results if e["action"] == "credit_grant.issue")
    assert grant["actor"] == "operator"  # finance's username stays the operator's
    own = next(
        e for e in results if e["action"] == "api_key.create" and e["after"]["scopes"] == ["read"]
    )
    assert own["actor"] == "system"
    # The operator sees everything, names included.
    seen = api(operator).get("/api/v1/audit?tenant=acme").json()["results"]
    assert {"finding.resolve", "credit_grant.issue"} <= {e["action"] for e in seen}
    assert "user:finance@operator.example" in {e["actor"] for e in seen}


def test_a_management_command_is_the_actor_of_what_it_changes(db):
    call_command("create_api_key", "--name", "ci", "--scopes", "read", stdout=StringIO())

    (entry,) = entries("api_key.create")
    assert entry.actor.startswith("cli:create_api_key:")
    assert audit_actor_current() == "system"  # nothing left behind after the command
