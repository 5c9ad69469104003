"""The demo business's billing: its catalog, a subscription per partner from the day it signed
up, welcome credits for some, and a prepaid pack bought by the largest ones. Through the
catalog and billing services, like any operator; idempotent."""

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from apps.billing.models import CreditGrant, Invoice, Subscription
from apps.billing.services.credits import credit_grant_issue
from apps.billing.services.purchases import credit_pack_purchase
from apps.billing.services.subscriptions import subscription_create
from apps.catalog.selectors import credit_pack_get, plan_get
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.demo.business import TenantPlan
from apps.tenants.models import Tenant

CATALOG_FILE = Path(__file__).with_name("catalog.yaml")
_PACKS = {"USD": "credits-500-usd", "EUR": "credits-500-eur", "GBP": "credits-500-gbp",
          "JPY": "credits-75000-jpy"}  # fmt: skip
_WELCOME = {"USD": Decimal(100), "EUR": Decimal(100), "GBP": Decimal(80), "JPY": Decimal(15000)}
GROWTH_PARTNERS = 6  # the largest partners (by traffic) are on the growth plan


@dataclass(frozen=True)
class DemoBilling:
    subscriptions_created: int
    welcome_credits: int
    packs_bought: int


def demo_billing_ensure(*, plans: list[TenantPlan]) -> DemoBilling:
    catalog_apply(doc=catalog_parse(content=CATALOG_FILE.read_text()))
    tenants = {t.external_id: t for t in Tenant.objects.filter(
        external_id__in=[p.spec.external_id for p in plans]
    )}  # fmt: skip
    subscribed = set(
        Subscription.objects.filter(tenant__in=tenants.values()).values_list(
            "tenant__external_id", flat=True
        )
    )
    created = welcomed = bought = 0
    ranked = sorted(plans, key=lambda p: -p.size)
    for rank, plan in enumerate(ranked):
        tenant = tenants.get(plan.spec.external_id)
        if tenant is None:
            continue
        currency = tenant.currency.lower()
        if tenant.external_id not in subscribed:
            tier = "growth" if rank < GROWTH_PARTNERS and plan.size else "starter"
            subscription_create(
                tenant=tenant, plan=plan_get(code=f"{tier}-{currency}"), start=tenant.registered_at
            )
            created += 1
        if rank % 4 == 1 and not CreditGrant.objects.filter(tenant=tenant, pack=None).exists():
            credit_grant_issue(
                tenant_id=tenant.id,
                currency=tenant.currency,
                amount=_WELCOME[tenant.currency],
                effective_at=tenant.registered_at,
                expires_at=None,
                reason="welcome credit",
            )
            welcomed += 1
        if (
            rank < 3
            and not Invoice.objects.filter(
                tenant=tenant, kind=Invoice.Kind.CREDIT_PURCHASE
            ).exists()
        ):
            credit_pack_purchase(tenant=tenant, pack=credit_pack_get(code=_PACKS[tenant.currency]))
            bought += 1
    return DemoBilling(created, welcomed, bought)
