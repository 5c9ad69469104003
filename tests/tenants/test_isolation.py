"""Tenant isolation of every API endpoint: a key bound to tenant A never sees or touches B.

Each route under api/v1 has a row in ISOLATION; a new endpoint without one fails
``test_every_api_route_has_an_isolation_check``.
"""

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from io import BytesIO
from uuid import UUID, uuid4

import pytest
import time_machine
from django.urls import URLResolver, get_resolver
from pypdf import PdfReader

from apps.alerts.models import Anomaly, Budget, WebhookEndpoint
from apps.alerts.services.budgets.manage import budget_create
from apps.alerts.services.webhooks import webhook_endpoint_create
from apps.billing.models import (
    CreditDebit,
    CreditGrant,
    CreditNote,
    IdempotentRequest,
    Invoice,
    InvoiceLine,
    PlanChange,
    Subscription,
)
from apps.billing.services.credits import credit_grant_issue
from apps.billing.services.operations import invoice_void
from apps.billing.services.runs import billing_run
from apps.billing.services.subscriptions import subscription_cancel
from apps.catalog.models import Plan
from apps.catalog.selectors import catalog_export
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.chargeback.models import Statement
from apps.chargeback.services.statements import statements_run
from apps.core.models import AuditEntry
from apps.costs.selectors import cost_period_parse
from apps.costs.services.rollup import cost_rollup_pending_run
from apps.metering.models import Event, EventKey
from apps.tenants.models import Tenant
from tests.billing.billing_setup import catalog_load, subscribe

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
DAY = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z"
HOUR = "2026-11-20T10:00:00Z"
OCT = datetime(2026, 10, 1, tzinfo=UTC)
# October's invoices are final an hour (the grace period) after the month ends.
OCT_BILLED = datetime(2026, 11, 1, 2, tzinfo=UTC)
B_SECRETS = ("Beta Secret Holdings", "beta-secret-model", "CHF")
# Beta pays in CHF, which the shared billing catalog does not sell: two plans and a pack of its
# own currency. Like all the catalog they are operator configuration, visible to every tenant.
CHF_CATALOG = {
    "rate_cards": [
        {
            "code": "chf-card",
            "currency": "CHF",
            "effective_from": "2026-01-01T00:00:00Z",
            "charges": [
                {
                    "meter": "tokens",
                    "model": "per_unit",
                    "unit_price": "3.00",
                    "package_size": "1000000",
                },
            ],
        },
    ],
    "plans": [
        {
            "code": "chf-base",
            "name": "Base CHF",
            "interval": "month",
            "base_fee": "49.00",
            "rate_card": "chf-card",
        },
        {
            "code": "chf-plus",
            "name": "Plus CHF",
            "interval": "month",
            "base_fee": "149.00",
            "rate_card": "chf-card",
        },
    ],
    "credit_packs": [
        {
            "code": "chf-pack",
            "name": "CHF 50 of credits",
            "price": "45.00",
            "credits": "50.00",
            "currency": "CHF",
        },
    ],
}
# Rollups are computed when ingestion commits, so these tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True)


class World:
    """Tenants alpha (3 events, USD) and beta (5 events, CHF); a key bound to alpha with every
    scope. Each tenant is subscribed from 1 October, has a credit grant and its finalized
    October invoice: the base fee, less the grant (alpha 99.00 - 30.00 USD, beta 49.00 - 20.00
    CHF)."""

    def __init__(self, make_tenant, make_key, api):
        catalog_load()
        catalog_apply(doc=catalog_parse(content=json.dumps(CHF_CATALOG)))
        self.alpha = make_tenant("alpha", name="Alpha Labs")
        self.beta = make_tenant("beta", name="Beta Secret Holdings", currency="CHF")
        self.operator = api(make_key())
        self.a = api(make_key(tenant=self.alpha))
        self._ingest(self.operator, "alpha", "a", 3, "gpt-4o")
        self._ingest(self.operator, "beta", "b", 5, "beta-secret-model")
        self.alpha_sub = subscribe(self.alpha, "growth", OCT)
        self.beta_sub = subscribe(self.beta, "chf-base", OCT)
        self.alpha_grant = self._grant(self.alpha, "30.00")
        self.beta_grant = self._grant(self.beta, "20.00")
        billing_run(as_of=OCT_BILLED)
        self.alpha_invoice = Invoice.objects.get(tenant=self.alpha)
        self.beta_invoice = Invoice.objects.get(tenant=self.beta)
        assert (self.alpha_invoice.total_amount, self.beta_invoice.total_amount) == (69, 29)
        # Never in a body alpha's key gets, but for a 404 echoing the id alpha itself sent.
        self.beta_refs = (
            str(self.beta_sub.id),
            str(self.beta_invoice.id),
            self.beta_invoice.number,
            str(self.beta_grant.id),
        )

    @staticmethod
    def _grant(tenant, amount):
        return credit_grant_issue(
            tenant_id=tenant.id,
            currency=tenant.currency,
            amount=Decimal(amount),
            effective_at=datetime(2026, 9, 1, tzinfo=UTC),
            expires_at=None,
            reason="welcome credit",
        )

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

    def beta_billing(self) -> dict[str, list[dict]]:
        """Every billing row of beta, whole, to show that a refused write changed none."""
        rows = {
            "subscriptions": Subscription.objects.filter(tenant=self.beta),
            "plan_changes": PlanChange.objects.filter(subscription__tenant=self.beta),
            "invoices": Invoice.objects.filter(tenant=self.beta),
            "lines": InvoiceLine.objects.filter(invoice__tenant=self.beta),
            "credit_notes": CreditNote.objects.filter(invoice__tenant=self.beta),
            "grants": CreditGrant.objects.filter(tenant=self.beta),
            "debits": CreditDebit.objects.filter(grant__tenant=self.beta),
            "idempotent": IdempotentRequest.objects.filter(scope__contains=str(self.beta.id)),
        }
        return {name: list(query.order_by("pk").values()) for name, query in rows.items()}


@pytest.fixture
def world(make_tenant, make_key, api, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")  # the issued invoices' PDFs
    with time_machine.travel(NOW, tick=False):
        yield World(make_tenant, make_key, api)


def assert_no_beta_data(response, *refs):
    """No beta secret in the body, nor any of ``refs`` (beta's ids and numbers)."""
    text = response.content.decode()
    for secret in (*B_SECRETS, *refs):
        assert secret not in text


def assert_reads_as_unknown(send, beta_ref):
    """``send(ref)`` with beta's id (or external id) ``beta_ref`` answers exactly what it answers
    for one that does not exist: 404, the same body but for the ref, no beta data."""
    beta_ref = str(beta_ref)
    unknown_ref = "nobody" if beta_ref == "beta" else str(uuid4())
    foreign, unknown = send(beta_ref), send(unknown_ref)

    assert (foreign.status_code, unknown.status_code) == (404, 404), foreign.content
    assert_no_beta_data(foreign)
    assert foreign.content.decode() == unknown.content.decode().replace(unknown_ref, beta_ref)


def pdf_text(response) -> str:
    assert (response.status_code, response["Content-Type"]) == (200, "application/pdf")
    return "\n".join(page.extract_text() for page in PdfReader(BytesIO(response.content)).pages)


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


def check_audit(w: World):
    """The audit log: beta's entries (its tenant, its key) never reach alpha's key."""
    response = w.a.get("/api/v1/audit?limit=500")
    assert response.status_code == 200, response.content
    alpha_id = str(Tenant.objects.get(external_id="alpha").id)
    entries = response.json()["results"]
    assert entries and {e["tenant"] for e in entries} == {"alpha"}
    assert all(alpha_id == str(AuditEntry.objects.get(id=e["id"]).tenant_id) for e in entries)
    assert_no_beta_data(response)
    assert_reads_as_unknown(lambda ref: w.a.get(f"/api/v1/audit?tenant={ref}"), "beta")
    # Control: the operator sees beta's entries.
    seen = w.operator.get("/api/v1/audit?tenant=beta&limit=500").json()["results"]
    assert seen and {e["tenant"] for e in seen} == {"beta"}


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


# Catalog: operator configuration, the same for every tenant.


def check_catalog(w: World):
    catalog_apply(
        doc=catalog_parse(
            content="price_book:\n  - effective_from: 2026-01-01\n    llm:\n"
            "      - {provider: openai, model: gpt-4o, input: 2.50, output: 10.00}\n"
            "fx_rates:\n  - {currency: CHF, date: 2026-01-01, rate: 1.13}\n"
        )
    )
    response = w.a.get("/api/v1/catalog")

    assert response.status_code == 200
    operator = w.operator.get("/api/v1/catalog").json()
    # What upstream providers charge the operator is not for tenants to read.
    assert "price_book" not in response.json() and "fx_rates" not in response.json()
    assert operator["price_book"][0]["llm"][0]["model"] == "gpt-4o"
    assert operator["fx_rates"] == [{"currency": "CHF", "date": "2026-01-01", "rate": "1.13"}]
    assert response.json() == {
        k: v for k, v in operator.items() if k not in ("price_book", "fx_rates")
    }
    assert {"growth", "chf-base"} <= {plan["code"] for plan in response.json()["plans"]}
    # beta's CHF plans are the operator's, shown to all (so "CHF" is no secret here); nothing
    # of beta the tenant is: not its name, external id, ids or events.
    for secret in ("Beta Secret Holdings", '"beta"', "beta-secret-model", *w.beta_refs):
        assert secret not in response.content.decode()


def check_catalog_apply(w: World):
    before = catalog_export()
    # alpha's key (admin scope, but bound to a tenant) tries to make beta's plan free.
    cheaper = {
        "plans": [
            {
                "code": "chf-base",
                "name": "Base CHF",
                "interval": "month",
                "base_fee": "0.00",
                "rate_card": "chf-card",
            },
            {"code": "chf-free", "name": "Free CHF", "interval": "month", "rate_card": "chf-card"},
        ]
    }

    refused = w.a.post("/api/v1/catalog/apply", cheaper)

    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")
    assert catalog_export() == before
    assert not Plan.objects.filter(code="chf-free").exists()
    # Control: the operator's key applies the same file.
    control = w.operator.post("/api/v1/catalog/apply", cheaper)
    assert control.status_code == 200
    plans = control.json()["plans"]
    assert (plans["created"], plans["updated"]) == (["chf-free"], ["chf-base"])


# Subscriptions.


def check_subscription_list(w: World):
    own = w.a.get("/api/v1/subscriptions")
    assert [s["id"] for s in own.json()] == [str(w.alpha_sub.id)]
    assert_no_beta_data(own, *w.beta_refs)
    assert_reads_as_unknown(lambda ref: w.a.get(f"/api/v1/subscriptions?tenant={ref}"), "beta")

    # beta's subscription ends, so that only the tenant scope can refuse a new one.
    subscription_cancel(subscription_id=w.beta_sub.id, immediately=True)
    before = w.beta_billing()
    body = {"plan": "chf-plus", "start": "2026-12-01T00:00:00Z"}
    assert_reads_as_unknown(
        lambda ref: w.a.post("/api/v1/subscriptions", {**body, "tenant": ref}), "beta"
    )
    assert w.beta_billing() == before

    # Control: the operator sees both and subscribes beta.
    listed = w.operator.get("/api/v1/subscriptions").json()
    assert [s["tenant"] for s in listed] == ["alpha", "beta"]
    created = w.operator.post("/api/v1/subscriptions", {**body, "tenant": "beta"})
    assert (created.status_code, created.json()["tenant"]) == (201, "beta")
    assert Subscription.objects.filter(tenant=w.beta).count() == 2


def check_subscription_detail(w: World):
    own = w.a.get(f"/api/v1/subscriptions/{w.alpha_sub.id}")
    assert (own.status_code, own.json()["plan"]) == (200, "growth")
    assert_no_beta_data(own, *w.beta_refs)
    assert_reads_as_unknown(lambda ref: w.a.get(f"/api/v1/subscriptions/{ref}"), w.beta_sub.id)

    control = w.operator.get(f"/api/v1/subscriptions/{w.beta_sub.id}")
    assert (control.json()["tenant"], control.json()["plan"]) == ("beta", "chf-base")


def check_subscription_plan(w: World):
    before = w.beta_billing()
    assert_reads_as_unknown(
        lambda ref: w.a.post(f"/api/v1/subscriptions/{ref}/plan", {"plan": "chf-plus"}),
        w.beta_sub.id,
    )
    assert w.beta_billing() == before
    assert not PlanChange.objects.filter(subscription=w.beta_sub).exists()

    own = w.a.post(f"/api/v1/subscriptions/{w.alpha_sub.id}/plan", {"plan": "pro"})
    assert own.json()["plan_changes"] == [
        {"plan": "pro", "effective_at": "2026-12-01T00:00:00+00:00"}
    ]
    control = w.operator.post(f"/api/v1/subscriptions/{w.beta_sub.id}/plan", {"plan": "chf-plus"})
    assert [c["plan"] for c in control.json()["plan_changes"]] == ["chf-plus"]


def check_subscription_cancel(w: World):
    before = w.beta_billing()
    assert_reads_as_unknown(
        lambda ref: w.a.post(f"/api/v1/subscriptions/{ref}/cancel", {"immediately": True}),
        w.beta_sub.id,
    )
    assert w.beta_billing() == before
    w.beta_sub.refresh_from_db()
    assert (w.beta_sub.ends_at, w.beta_sub.canceled_at) == (None, None)

    control = w.operator.post(
        f"/api/v1/subscriptions/{w.beta_sub.id}/cancel", {"immediately": True}
    )
    assert (control.status_code, control.json()["ends_at"]) == (200, NOW.isoformat())


# Invoices.


def check_invoice_list(w: World):
    own = w.a.get("/api/v1/invoices")
    assert [i["id"] for i in own.json()] == [str(w.alpha_invoice.id)]
    assert_no_beta_data(own, *w.beta_refs)
    finalized = w.a.get("/api/v1/invoices?status=finalized")
    assert [i["tenant"] for i in finalized.json()] == ["alpha"]
    assert_reads_as_unknown(lambda ref: w.a.get(f"/api/v1/invoices?tenant={ref}"), "beta")

    listed = w.operator.get("/api/v1/invoices").json()
    assert sorted(i["tenant"] for i in listed) == ["alpha", "beta"]
    control = w.operator.get("/api/v1/invoices?tenant=beta").json()
    assert [i["id"] for i in control] == [str(w.beta_invoice.id)]


def check_invoice_detail(w: World):
    own = w.a.get(f"/api/v1/invoices/{w.alpha_invoice.id}")
    assert (own.json()["tenant"], own.json()["total"]) == ("alpha", "69.00")
    assert_no_beta_data(own, *w.beta_refs)
    assert_reads_as_unknown(lambda ref: w.a.get(f"/api/v1/invoices/{ref}"), w.beta_invoice.id)

    control = w.operator.get(f"/api/v1/invoices/{w.beta_invoice.id}")
    assert (control.json()["tenant"], control.json()["total"]) == ("beta", "29.00")


def check_invoice_pdf(w: World):
    own = pdf_text(w.a.get(f"/api/v1/invoices/{w.alpha_invoice.id}/pdf"))
    assert "Alpha Labs" in own
    assert w.alpha_invoice.number in own
    for secret in ("Beta Secret Holdings", w.beta_invoice.number):
        assert secret not in own
    assert_reads_as_unknown(lambda ref: w.a.get(f"/api/v1/invoices/{ref}/pdf"), w.beta_invoice.id)

    control = pdf_text(w.operator.get(f"/api/v1/invoices/{w.beta_invoice.id}/pdf"))
    assert "Beta Secret Holdings" in control


def check_invoice_finalize(w: World):
    # beta's invoice reissued as a draft, which only the tenant scope keeps alpha from finalizing.
    draft = invoice_void(invoice_id=w.beta_invoice.id, reason="wrong address", reissue=True)
    before = w.beta_billing()

    # Finance's action: refused to a tenant-bound key whatever the invoice.
    _refused(w.a.post(f"/api/v1/invoices/{draft.id}/finalize"))

    assert w.beta_billing() == before
    draft.refresh_from_db()
    assert (draft.status, draft.number) == ("draft", None)
    control = w.operator.post(f"/api/v1/invoices/{draft.id}/finalize")
    assert (control.status_code, control.json()["status"]) == (200, "finalized")


def check_invoice_void(w: World):
    before = w.beta_billing()

    _refused(
        w.a.post(
            f"/api/v1/invoices/{w.beta_invoice.id}/void",
            {"reason": "alpha says so", "reissue": True},
        )
    )

    assert w.beta_billing() == before
    w.beta_invoice.refresh_from_db()
    assert w.beta_invoice.status == "finalized"
    # Control: voided by the operator, its 20.00 CHF of credit goes back to beta's grant.
    control = w.operator.post(f"/api/v1/invoices/{w.beta_invoice.id}/void", {"reason": "typo"})
    assert (control.status_code, control.json()["status"]) == (200, "void")
    w.beta_grant.refresh_from_db()
    assert w.beta_grant.remaining_amount == Decimal("20.00")


def check_invoice_mark_paid(w: World):
    before = w.beta_billing()

    _refused(w.a.post(f"/api/v1/invoices/{w.beta_invoice.id}/mark-paid"))

    assert w.beta_billing() == before
    # Not its own either: recording a payment is finance's.
    _refused(w.a.post(f"/api/v1/invoices/{w.alpha_invoice.id}/mark-paid"))
    w.alpha_invoice.refresh_from_db()
    assert w.alpha_invoice.status == "finalized"
    control = w.operator.post(f"/api/v1/invoices/{w.beta_invoice.id}/mark-paid")
    assert (control.status_code, control.json()["status"]) == (200, "paid")


def check_invoice_credit_notes(w: World):
    before = w.beta_billing()
    note = {"amount": "5.00", "reason": "goodwill"}

    _refused(w.a.post(f"/api/v1/invoices/{w.beta_invoice.id}/credit-notes", note))

    assert w.beta_billing() == before
    assert not CreditNote.objects.filter(invoice=w.beta_invoice).exists()
    control = w.operator.post(f"/api/v1/invoices/{w.beta_invoice.id}/credit-notes", note)
    assert control.status_code == 201
    assert [n["amount"] for n in control.json()["credit_notes"]] == ["5.00"]


def check_invoice_preview(w: World):
    own = w.a.get("/api/v1/invoices/preview")
    assert own.status_code == 200, own.content
    body = own.json()
    assert (body["tenant"], body["plan"], body["currency"]) == ("alpha", "growth", "USD")
    assert body["period_start"] == "2026-11-01T00:00:00+00:00"
    # alpha's 300 tokens of gpt-4o so far; beta's 500 are not in it.
    tokens = {
        line["description"]: line["quantity"] for line in body["lines"] if line["meter"] == "tokens"
    }
    assert tokens == {"tokens (model gpt-4o)": "300", "tokens (model mini)": "0"}
    assert_no_beta_data(own, *w.beta_refs)
    assert w.a.get("/api/v1/invoices/preview?tenant=alpha").json() == body
    assert_reads_as_unknown(lambda ref: w.a.get(f"/api/v1/invoices/preview?tenant={ref}"), "beta")

    control = w.operator.get("/api/v1/invoices/preview?tenant=beta").json()
    assert (control["tenant"], control["plan"], control["currency"]) == ("beta", "chf-base", "CHF")
    assert [line["quantity"] for line in control["lines"] if line["meter"] == "tokens"] == ["500"]


def check_credit_purchases(w: World):
    before = w.beta_billing()

    assert_reads_as_unknown(
        lambda ref: w.a.post(
            f"/api/v1/tenants/{ref}/credit-purchases",
            {"pack": "chf-pack"},
            **{"Idempotency-Key": "k-1"},
        ),
        "beta",
    )

    assert w.beta_billing() == before
    # Control: the operator buys beta a pack under key k-1 ...
    control = w.operator.post(
        "/api/v1/tenants/beta/credit-purchases", {"pack": "chf-pack"}, **{"Idempotency-Key": "k-1"}
    )
    assert (control.status_code, control.json()["tenant"]) == (201, "beta")
    assert CreditGrant.objects.filter(tenant=w.beta).count() == 2
    # ... and alpha's own purchase under the same key is alpha's, not beta's answer replayed.
    own = w.a.post(
        "/api/v1/tenants/alpha/credit-purchases", {"pack": "pack-100"}, **{"Idempotency-Key": "k-1"}
    )
    assert (own.status_code, own.json()["tenant"], own.json()["total"]) == (201, "alpha", "90.00")
    assert_no_beta_data(own, *w.beta_refs, control.json()["id"], control.json()["number"])


def check_credits(w: World):
    own = w.a.get("/api/v1/tenants/alpha/credits")
    assert own.json()["currency"] == "USD"
    assert [g["id"] for g in own.json()["grants"]] == [str(w.alpha_grant.id)]
    assert_no_beta_data(own, *w.beta_refs)
    assert_reads_as_unknown(lambda ref: w.a.get(f"/api/v1/tenants/{ref}/credits"), "beta")

    control = w.operator.get("/api/v1/tenants/beta/credits").json()
    assert control["currency"] == "CHF"
    assert [g["id"] for g in control["grants"]] == [str(w.beta_grant.id)]


def _statement(w: World):
    """A drafted November statement (the Unallocated one: no cost centers here)."""
    cost_rollup_pending_run()
    statements_run(period=cost_period_parse("2026-11"))
    return Statement.objects.get(period_start=date(2026, 11, 1))


def _refused(response) -> None:
    """Operator-only figures (what calls cost us, chargeback): a tenant-bound key gets 403,
    and nothing of another tenant in the answer."""
    assert response.status_code == 403, response.content
    assert b"beta" not in response.content.lower()


def check_operator_only_get(path: str):
    def check(w: World):
        url = path.format(id=_statement(w).id) if "{id}" in path else path
        _refused(w.a.get(url, {"period": "2026-11"}))
        control = w.operator.get(url, {"period": "2026-11"})
        assert control.status_code == 200, control.content

    return check


def check_operator_only_post(path: str):
    def check(w: World):
        statement = _statement(w)
        url = path.format(id=statement.id) + ("?period=2026-11" if "{id}" not in path else "")
        _refused(w.a.post(url, {"reason": "alpha tries"}))
        statement.refresh_from_db()
        assert statement.status == "draft" and statement.number is None

    return check


def _beta_endpoint(w: World):
    return webhook_endpoint_create(
        url="https://beta.example.com/hooks", tenant_id=w.beta.id, event_types=[]
    )


def check_webhook_endpoints(w: World):
    beta_endpoint = _beta_endpoint(w)
    own = w.a.post("/api/v1/webhooks/endpoints", {"url": "https://alpha.example.com/hooks"})
    assert own.status_code == 201 and own.json()["tenant"] == "alpha"
    listed = w.a.get("/api/v1/webhooks/endpoints")
    assert [e["tenant"] for e in listed.json()["results"]] == ["alpha"]
    assert str(beta_endpoint.id) not in listed.content.decode()
    # alpha cannot make an endpoint that would receive beta's events
    refused = w.a.post(
        "/api/v1/webhooks/endpoints",
        {"url": "https://alpha.example.com/steal", "tenant": "beta"},
    )
    assert refused.status_code == 404 and "Beta Secret" not in refused.content.decode()
    assert WebhookEndpoint.objects.filter(tenant=w.beta).count() == 1
    control = w.operator.get("/api/v1/webhooks/endpoints")
    assert {e["tenant"] for e in control.json()["results"]} == {"alpha", "beta"}


def check_webhook_endpoint_route(suffix: str, method: str = "get"):
    def check(w: World):
        beta_endpoint = _beta_endpoint(w)
        url = f"/api/v1/webhooks/endpoints/{beta_endpoint.id}{suffix}"
        response = getattr(w.a, method)(url)
        assert response.status_code == 404, response.content
        assert "beta.example.com" not in response.content.decode()
        beta_endpoint.refresh_from_db()
        assert beta_endpoint.active
        control = w.operator.get(f"/api/v1/webhooks/endpoints/{beta_endpoint.id}")
        assert control.status_code == 200

    return check


def _beta_finding(w: World):
    from apps.assurance.models import Finding

    return Finding.objects.create(
        category="unpriced", tenant=w.beta, period_start=date(2026, 11, 1),
        subject="beta-secret-model", quantity=5, unit="events", amount_at_risk=0,
        currency="USD", basis="cost", first_seen_at=NOW, last_seen_at=NOW,
    )  # fmt: skip


def check_leakage(path: str, method: str = "get", body: dict | None = None):
    """Leakage figures are the operator's: a tenant-bound key gets 403 and changes nothing."""

    def check(w: World):
        finding = _beta_finding(w)
        url = path.format(id=finding.id)
        _refused(getattr(w.a, method)(url, body or {"period": "2026-11"}))
        finding.refresh_from_db()
        assert finding.status == "open"
        if method == "get":
            control = w.operator.get(url, {"period": "2026-11"})
            assert control.status_code == 200, control.content

    return check


def _beta_budget(w: World):
    return budget_create(
        name="Beta Secret Holdings spend",
        scope="tenant",
        tenant=w.beta,
        measure="cost",
        amount=Decimal("10"),
    )


def check_budgets(w: World):
    beta_budget = _beta_budget(w)
    body = {"name": "alpha spend", "scope": "tenant", "measure": "cost", "amount": "100"}
    own = w.a.post("/api/v1/budgets", body)
    assert own.status_code == 201 and own.json()["tenant"] == "alpha", own.content
    listed = w.a.get("/api/v1/budgets")
    assert [b["tenant"] for b in listed.json()["results"]] == ["alpha"]
    assert_no_beta_data(listed, str(beta_budget.id))
    # alpha cannot make a budget of beta's spend, nor list beta's by name
    refused = w.a.post("/api/v1/budgets", {**body, "tenant": "beta"})
    assert refused.status_code == 404
    assert_no_beta_data(refused)
    assert w.a.get("/api/v1/budgets", {"tenant": "beta"}).status_code == 404
    assert Budget.objects.filter(tenant=w.beta).count() == 1
    control = w.operator.get("/api/v1/budgets")
    assert {b["tenant"] for b in control.json()["results"]} == {"alpha", "beta"}


def check_budget_route(suffix: str):
    def check(w: World):
        beta_budget = _beta_budget(w)
        assert_reads_as_unknown(
            lambda ref: w.a.get(f"/api/v1/budgets/{ref}{suffix}"), str(beta_budget.id)
        )
        control = w.operator.get(f"/api/v1/budgets/{beta_budget.id}{suffix}")
        assert control.status_code == 200

    return check


def check_limits(w: World):
    assert_reads_as_unknown(lambda ref: w.a.get(f"/api/v1/limits/{ref}"), "beta")
    assert w.a.get("/api/v1/limits/alpha").json()["tenant"] == "alpha"
    assert w.operator.get("/api/v1/limits/beta").json()["tenant"] == "beta"


def check_anomaly_post(action: str):
    """Acknowledging or resolving is the operator's: alpha's key gets 403 on beta's anomaly
    (and on any), and the anomaly stays open."""

    def check(w: World):
        anomaly = Anomaly.objects.create(
            tenant=w.beta,
            scope="tenant",
            kind="cost_jump",
            hour=datetime(2026, 11, 20, 10, tzinfo=UTC),
            observed=Decimal(2),
            baseline_median=Decimal(1),
            baseline_mad=Decimal(0),
            baseline_method="hour_of_week",
            score=Decimal(10),
            detected_at=NOW,
        )
        _refused(w.a.post(f"/api/v1/anomalies/{anomaly.id}/{action}"))
        anomaly.refresh_from_db()
        assert anomaly.status == "open"
        control = w.operator.post(f"/api/v1/anomalies/{anomaly.id}/{action}")
        assert control.status_code == 200, control.content

    return check


ISOLATION = {
    "api/v1/budgets": check_budgets,
    "api/v1/budgets/<str:budget_id>": check_budget_route(""),
    "api/v1/budgets/<str:budget_id>/alerts": check_budget_route("/alerts"),
    "api/v1/limits/<str:external_id>": check_limits,
    "api/v1/webhooks/endpoints": check_webhook_endpoints,
    "api/v1/leakage/report": check_leakage("/api/v1/leakage/report"),
    "api/v1/leakage/findings": check_leakage("/api/v1/leakage/findings"),
    "api/v1/leakage/findings/<str:finding_id>": check_leakage("/api/v1/leakage/findings/{id}"),
    "api/v1/leakage/findings/<str:finding_id>/acknowledge": check_leakage(
        "/api/v1/leakage/findings/{id}/acknowledge", "post", {}
    ),
    "api/v1/leakage/findings/<str:finding_id>/resolve": check_leakage(
        "/api/v1/leakage/findings/{id}/resolve", "post", {"reason": "alpha tries"}
    ),
    "api/v1/leakage/scans": check_leakage("/api/v1/leakage/scans", "post", {"period": "2026-11"}),
    "api/v1/webhooks/endpoints/<str:endpoint_id>": check_webhook_endpoint_route(""),
    "api/v1/webhooks/endpoints/<str:endpoint_id>/rotate-secret": check_webhook_endpoint_route(
        "/rotate-secret", "post"
    ),
    "api/v1/webhooks/endpoints/<str:endpoint_id>/deliveries/<str:delivery_id>/redeliver": (
        check_webhook_endpoint_route(f"/deliveries/{UUID(int=1)}/redeliver", "post")
    ),
    "api/v1/analytics/<str:metric>": check_operator_only_get("/api/v1/analytics/cost"),
    "api/v1/analytics/full_cost_per_call": check_operator_only_get(
        "/api/v1/analytics/full_cost_per_call"
    ),
    "api/v1/statements": check_operator_only_get("/api/v1/statements"),
    "api/v1/statements/run": check_operator_only_post("/api/v1/statements/run"),
    "api/v1/statements/<str:statement_id>": check_operator_only_get("/api/v1/statements/{id}"),
    "api/v1/statements/<str:statement_id>/pdf": check_operator_only_get(
        "/api/v1/statements/{id}/pdf"
    ),
    "api/v1/statements/<str:statement_id>/issue": check_operator_only_post(
        "/api/v1/statements/{id}/issue"
    ),
    "api/v1/statements/<str:statement_id>/corrections": check_operator_only_post(
        "/api/v1/statements/{id}/corrections"
    ),
    "api/v1/exports/focus": check_operator_only_get("/api/v1/exports/focus"),
    "api/v1/exports/chargeback-gl": check_operator_only_get("/api/v1/exports/chargeback-gl"),
    "api/v1/anomalies": check_operator_only_get("/api/v1/anomalies"),
    "api/v1/anomalies/<str:anomaly_id>/acknowledge": check_anomaly_post("acknowledge"),
    "api/v1/anomalies/<str:anomaly_id>/resolve": check_anomaly_post("resolve"),
    "api/v1/forecasts": check_operator_only_get("/api/v1/forecasts"),
    "api/v1/forecasts/accuracy": check_operator_only_get("/api/v1/forecasts/accuracy"),
    "api/v1/audit": check_audit,
    "api/v1/tenants": check_tenant_list,
    "api/v1/tenants/<str:external_id>": check_tenant_detail,
    "api/v1/events": check_events,
    "api/v1/usage": check_usage,
    "api/v1/usage/check": check_usage_check,
    "api/v1/catalog": check_catalog,
    "api/v1/catalog/apply": check_catalog_apply,
    "api/v1/subscriptions": check_subscription_list,
    "api/v1/subscriptions/<uuid:subscription_id>": check_subscription_detail,
    "api/v1/subscriptions/<uuid:subscription_id>/plan": check_subscription_plan,
    "api/v1/subscriptions/<uuid:subscription_id>/cancel": check_subscription_cancel,
    "api/v1/invoices": check_invoice_list,
    "api/v1/invoices/preview": check_invoice_preview,
    "api/v1/invoices/<uuid:invoice_id>": check_invoice_detail,
    "api/v1/invoices/<uuid:invoice_id>/pdf": check_invoice_pdf,
    "api/v1/invoices/<uuid:invoice_id>/finalize": check_invoice_finalize,
    "api/v1/invoices/<uuid:invoice_id>/void": check_invoice_void,
    "api/v1/invoices/<uuid:invoice_id>/mark-paid": check_invoice_mark_paid,
    "api/v1/invoices/<uuid:invoice_id>/credit-notes": check_invoice_credit_notes,
    "api/v1/tenants/<str:external_id>/credit-purchases": check_credit_purchases,
    "api/v1/tenants/<str:external_id>/credits": check_credits,
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
