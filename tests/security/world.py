"""Two tenants, A (Acorn) and B (Bramble), each with one of every kind of object a URL of the
project can address: a subscription, a finalized invoice with its PDF and a draft one, a credit
grant, usage, a webhook endpoint with a delivery, a budget with an alert, a leakage finding, an
anomaly, members and a tenant-bound API key; and the operator's chargeback statement.

B's words are distinctive (``bramble``) so that a body can be searched for them: none may
appear in anything A's credentials get, but for the ids A itself put in the request.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser

from apps.alerts.models import Anomaly, Budget, BudgetAlert, WebhookDelivery, WebhookMessage
from apps.alerts.services.budgets.evaluate import budgets_evaluate
from apps.alerts.services.budgets.manage import budget_create
from apps.alerts.services.webhooks import webhook_endpoint_create
from apps.assurance.models import Finding
from apps.billing.models import CreditGrant, Invoice, Subscription
from apps.billing.services.credits import credit_grant_issue
from apps.billing.services.runs import billing_run
from apps.chargeback.models import Statement
from apps.chargeback.services.statements import statements_run
from apps.costs.selectors import cost_period_parse
from apps.costs.services.rollup import cost_rollup_pending_run
from apps.metering.selectors import meter_get
from apps.tenants.models import ApiKey, Membership, Tenant
from apps.tenants.services.api_keys import IssuedApiKey, api_key_create
from apps.tenants.services.tenants import tenant_create
from tests.billing.billing_setup import catalog_load, event, send, subscribe

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
SETUP = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)
OCT = datetime(2026, 10, 1, tzinfo=UTC)
OCT_BILLED = datetime(2026, 11, 1, 2, tzinfo=UTC)
PASSWORD = "correct horse battery staple"


@dataclass
class Side:
    """One tenant's objects."""

    tenant: Tenant
    owner: Any
    key: IssuedApiKey
    subscription: Subscription
    invoice: Invoice
    draft: Invoice
    grant: CreditGrant
    endpoint: Any
    delivery: WebhookDelivery
    budget: Budget
    finding: Finding
    anomaly: Anomaly
    membership: Membership


class World:
    def __init__(self) -> None:
        catalog_load()
        users = get_user_model().objects
        self.a_owner = users.create_user("ada", "ada@acorn.example", PASSWORD)
        self.b_owner = users.create_user("bert", "bert@bramble-secret.example", PASSWORD)
        # In both tenants, as owner: what they see and change depends on the one chosen.
        self.both = users.create_user("max", "max@example.com", PASSWORD)
        a = tenant_create(
            external_id="acorn",
            name="Acorn Analytics",
            currency="USD",
            billing_email="ap@acorn.example",
        )
        b = tenant_create(
            external_id="bramble-7f3e",
            name="Bramble Secret Holdings",
            currency="USD",
            billing_email="ap@bramble-secret.example",
        )
        send(*self._usage("acorn", "acorn-feature", 3), *self._usage("bramble-7f3e", "bramble", 5))
        subs = {t.id: subscribe(t, "growth", OCT) for t in (a, b)}
        grants = {t.id: self._grant(t) for t in (a, b)}
        billing_run(as_of=OCT_BILLED)
        self.a = self._side(a, self.a_owner, subs[a.id], grants[a.id], 1)
        self.b = self._side(b, self.b_owner, subs[b.id], grants[b.id], 2)
        Membership.objects.create(user=self.both, tenant=a, role="owner")
        Membership.objects.create(user=self.both, tenant=b, role="owner")
        cost_rollup_pending_run()
        statements_run(period=cost_period_parse("2026-11"))
        self.statement = Statement.objects.order_by("created_at").first()
        assert self.statement is not None

    @staticmethod
    def _usage(tenant: str, feature: str, count: int) -> list[dict]:
        return [
            event(
                tenant,
                "api.call",
                f"2026-11-18T10:{i:02d}:00Z",
                feature=f"{feature}-secret" if tenant != "acorn" else feature,
                endpoint=f"/{feature}-path",
            )
            for i in range(count)
        ]

    @staticmethod
    def _grant(tenant: Tenant) -> CreditGrant:
        return credit_grant_issue(
            tenant_id=tenant.id,
            currency="USD",
            amount=Decimal("30.00"),
            effective_at=datetime(2026, 9, 1, tzinfo=UTC),
            expires_at=None,
            reason=f"welcome credit for {tenant.name}",
        )

    def _side(self, tenant, owner, subscription, grant, n: int) -> Side:
        membership = Membership.objects.create(user=owner, tenant=tenant, role="owner")
        invoice = Invoice.objects.get(tenant=tenant, status=Invoice.Status.FINALIZED)
        draft = Invoice.objects.create(
            tenant=tenant,
            subscription=subscription,
            currency="USD",
            period_start=datetime(2026, 12, 1, tzinfo=UTC),
            period_end=datetime(2027, 1, 1, tzinfo=UTC),
        )
        endpoint = webhook_endpoint_create(
            url=f"https://{tenant.external_id}-hook.example/in", tenant_id=tenant.id, event_types=[]
        )
        message = WebhookMessage.objects.create(
            msg_id=f"msg_{tenant.external_id}",
            event_type="invoice.finalized",
            tenant_id=tenant.id,
            body="{}",
            outbox_event_id=20_000 + n,
        )
        delivery = WebhookDelivery.objects.create(endpoint=endpoint, message=message)
        budget = budget_create(
            name=f"{tenant.name} calls",
            scope="tenant",
            tenant=tenant,
            measure="usage",
            meter=meter_get(code="calls"),
            amount=Decimal("2"),
        )
        budgets_evaluate(as_of=SETUP, budget_ids=[budget.id])
        assert BudgetAlert.objects.filter(budget=budget).exists()
        finding = Finding.objects.create(
            category="unpriced", tenant=tenant, period_start=date(2026, 11, 1),
            subject=f"{tenant.external_id}-model", quantity=5, unit="events", amount_at_risk=0,
            currency="USD", basis="cost", first_seen_at=SETUP, last_seen_at=SETUP,
        )  # fmt: skip
        anomaly = Anomaly.objects.create(
            tenant=tenant, scope="tenant", kind="cost_jump",
            hour=datetime(2026, 11, 18, 10, tzinfo=UTC), observed=Decimal(2),
            baseline_median=Decimal(1), baseline_mad=Decimal(0), baseline_method="hour_of_week",
            score=Decimal(10), detected_at=SETUP,
        )  # fmt: skip
        key = api_key_create(
            name=f"{tenant.external_id} ci", scopes=["ingest", "read", "admin"], tenant=tenant
        )
        return Side(
            tenant=tenant, owner=owner, key=key, subscription=subscription, invoice=invoice,
            draft=draft, grant=grant, endpoint=endpoint, delivery=delivery, budget=budget,
            finding=finding, anomaly=anomaly, membership=membership,
        )  # fmt: skip

    def b_secrets(self) -> tuple[str, ...]:
        """What identifies B: none of it may reach A."""
        b = self.b
        assert b.invoice.number
        return (
            b.tenant.external_id,
            "bramble",
            "Bramble",
            b.tenant.name,
            b.tenant.billing_email,
            b.owner.email,
            b.invoice.number,
            b.key.api_key.prefix,
            *(
                str(obj.id)
                for obj in (
                    b.tenant, b.subscription, b.invoice, b.draft, b.grant, b.endpoint,
                    b.delivery, b.budget, b.finding, b.anomaly,
                )
            ),
            *(
                obj.id.hex
                for obj in (b.tenant, b.subscription, b.invoice, b.draft, b.grant, b.endpoint)
            ),
        )  # fmt: skip


def snapshot() -> dict[str, list[dict]]:
    """Every row of every model of ours (and users), whole: a refused write changes none."""
    rows: dict[str, list[dict]] = {}
    for model in django_apps.get_models():
        if not (model.__module__.startswith("apps.") or model is get_user_model()):
            continue
        query = model._default_manager.all()
        values = [dict(row) for row in query.values()]
        for row in values:
            if model is ApiKey:
                row.pop("last_used_at", None)
            if issubclass(model, AbstractUser):
                row.pop("last_login", None)
        rows[model._meta.label] = sorted(values, key=repr)
    return rows


def snapshot_diff(
    before: dict[str, list[dict]], after: dict[str, list[dict]]
) -> tuple[list[str], list[str]]:
    """(rows of ``before`` changed or gone, rows new in ``after``), each as its model and repr."""
    old = {f"{name} {row!r}" for name, rows in before.items() for row in rows}
    new = {f"{name} {row!r}" for name, rows in after.items() for row in rows}
    return sorted(old - new), sorted(new - old)
