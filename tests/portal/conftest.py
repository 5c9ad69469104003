"""The portal's world: two tenants on the Growth plan (99.00 USD a month) since 1 October,
each with October's finalized invoice, November usage, a webhook endpoint and an API key; and
people: alpha's owner, billing member and viewer, beta's owner, a member of both, and someone
in no tenant.

Set up a day before the tests' ``NOW`` so that October's credit debits fall inside the 30-day
burn window credit status measures (it counts debits strictly before now)."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import get_user_model

from apps.alerts.models import WebhookDelivery, WebhookMessage
from apps.alerts.services.budgets.evaluate import budgets_evaluate
from apps.alerts.services.budgets.manage import budget_create
from apps.alerts.services.webhooks import webhook_endpoint_create
from apps.billing.models import Invoice
from apps.billing.services.credits import credit_grant_issue
from apps.billing.services.runs import billing_run
from apps.metering.selectors import meter_get
from apps.tenants.models import Membership
from apps.tenants.services.api_keys import api_key_create
from tests.billing.billing_setup import catalog_load, event, send, subscribe

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
SETUP = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)
OCT = datetime(2026, 10, 1, tzinfo=UTC)
OCT_BILLED = datetime(2026, 11, 1, 2, tzinfo=UTC)
PASSWORD = "correct horse battery staple"
# Beta's words: none may appear in any page alpha's people get.
B_SECRETS = ("Beta Secret Holdings", "beta-secret-feature", "/beta-secret", "beta-hook.example")


class World:
    def __init__(self) -> None:
        from apps.tenants.services.tenants import tenant_create

        catalog_load()
        self.alpha = tenant_create(external_id="alpha", name="Alpha Labs", currency="USD")
        self.beta = tenant_create(external_id="beta", name="Beta Secret Holdings", currency="USD")
        users = get_user_model().objects
        self.owner = users.create_user("olga", "olga@alpha.example", PASSWORD)
        self.billing = users.create_user("bill", "bill@alpha.example", PASSWORD)
        self.viewer = users.create_user("vera", "vera@alpha.example", PASSWORD)
        self.beta_owner = users.create_user("bert", "bert@beta.example", PASSWORD)
        self.both = users.create_user("max", "max@example.com", PASSWORD)
        self.nobody = users.create_user("nora", "nora@example.com", PASSWORD)
        for user, tenant, role in (
            (self.owner, self.alpha, "owner"),
            (self.billing, self.alpha, "billing"),
            (self.viewer, self.alpha, "viewer"),
            (self.beta_owner, self.beta, "owner"),
            (self.both, self.alpha, "viewer"),
            (self.both, self.beta, "owner"),
        ):
            Membership.objects.create(user=user, tenant=tenant, role=role)
        self._usage()
        for tenant in (self.alpha, self.beta):
            subscribe(tenant, "growth", OCT)
        # Alpha 200.00 of credits, beta 50.00; October's invoices spend from them (alpha's:
        # 99.00 base fee + 10.00 of job units = 109.00, all paid by credits).
        self.alpha_grant = self._grant(self.alpha, "200.00", "welcome credit")
        self._grant(self.beta, "50.00", "beta-secret-feature promo")
        billing_run(as_of=OCT_BILLED)
        self.alpha_invoice = Invoice.objects.get(tenant=self.alpha)
        self.beta_invoice = Invoice.objects.get(tenant=self.beta)
        self.alpha_hook = webhook_endpoint_create(
            url="https://alpha-hook.example/in", tenant_id=self.alpha.id, event_types=[]
        )
        self.beta_hook = webhook_endpoint_create(
            url="https://beta-hook.example/in", tenant_id=self.beta.id, event_types=[]
        )
        self.alpha_key = api_key_create(name="alpha ci", scopes=["read"], tenant=self.alpha)
        self.beta_key = api_key_create(name="beta ci", scopes=["read"], tenant=self.beta)
        self.budget = budget_create(
            name="Monthly calls",
            scope="tenant",
            tenant=self.alpha,
            measure="usage",
            meter=meter_get(code="calls"),
            amount=Decimal("8"),
        )
        budgets_evaluate(as_of=SETUP, budget_ids=[self.budget.id])

    def _usage(self) -> None:
        alpha_calls = [("search", "/v1/search", "2026-11-18T10:0{}:00Z")] * 4
        alpha_calls += [("chat", "/v1/chat", "2026-11-19T09:0{}:00Z")] * 2
        events = [
            event("alpha", "api.call", at.format(i), feature=f, endpoint=e)
            for i, (f, e, at) in enumerate(alpha_calls)
        ]
        events.append(
            event(
                "alpha",
                "llm.call",
                "2026-11-19T09:30:00Z",
                feature="chat",
                endpoint="/v1/chat",
                model="gpt-4o",
                input_tokens=1_000_000,
            )
        )
        # October: 150,000 job units, billed on October's invoice in graduated tiers.
        events.append(event("alpha", "job.run", "2026-10-15T12:00:00Z", quantity=150_000))
        events += [
            event(
                "beta",
                "api.call",
                f"2026-11-18T11:0{i}:00Z",
                feature="beta-secret-feature",
                endpoint="/beta-secret",
            )
            for i in range(9)
        ]
        send(*events)

    @staticmethod
    def _grant(tenant, amount: str, reason: str):
        return credit_grant_issue(
            tenant_id=tenant.id,
            currency="USD",
            amount=Decimal(amount),
            effective_at=datetime(2026, 9, 1, tzinfo=UTC),
            expires_at=None,
            reason=reason,
        )

    def delivery(self, endpoint, n: int) -> WebhookDelivery:
        message = WebhookMessage.objects.create(
            msg_id=f"msg_{endpoint.id.hex[:8]}_{n}",
            event_type="invoice.finalized",
            tenant_id=endpoint.tenant_id,
            body="{}",
            outbox_event_id=10_000 + n + (0 if endpoint.tenant_id == self.alpha.id else 5000),
        )
        return WebhookDelivery.objects.create(endpoint=endpoint, message=message)

    def beta_refs(self) -> tuple[str, ...]:
        return (
            str(self.beta_invoice.id),
            self.beta_invoice.number,
            str(self.beta_hook.id),
            self.beta_key.api_key.prefix,
        )


@pytest.fixture
def world(db, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    with time_machine.travel(SETUP, tick=False):
        built = World()
    with time_machine.travel(NOW, tick=False):
        yield built


@pytest.fixture
def as_user(client):
    """Sign ``user`` in on the test client and return the client."""

    def sign_in(user):
        client.force_login(user)
        return client

    return sign_in


def assert_no_beta(response, world: World) -> None:
    text = response.content.decode(errors="replace")
    for secret in (*B_SECRETS, *world.beta_refs()):
        assert secret not in text, secret
