"""The demo business's chargeback set-up: ledger accounts and budgets of its cost centers,
mapping rules for the shared services, and shared-cost pools. Idempotent."""

from decimal import Decimal

from django.db import transaction

from apps.chargeback.models import CostCenterRule, SharedCostPool
from apps.tenants.models import CostCenter

_ACCOUNTS = {
    "platform": ("6110-PLATFORM", "9000"),
    "search": ("6120-SEARCH", "4000"),
    "doc-ai": ("6130-DOCAI", "6000"),
    "support-bot": ("6210-SUPPORT", "7000"),
    "growth": ("6220-GROWTH", "3000"),
}
# Calls of the shared gateway and the LLM router have no team of their own: the platform team
# runs both.
_RULES = (("service", "api-gateway", "platform"), ("service", "llm-router", "platform"))
_POOLS: tuple[tuple[str, str, str, str, dict[str, str]], ...] = (
    ("observability", "Observability platform", "12000.00", "requests", {}),
    ("security", "Security and compliance", "3000.00", "even", {}),
    (
        "data-platform",
        "Data platform",
        "5000.00",
        "fixed",
        {"platform": "40", "search": "30", "doc-ai": "30"},
    ),
)


@transaction.atomic
def demo_chargeback_ensure() -> None:
    for code, (account, budget) in _ACCOUNTS.items():
        CostCenter.objects.filter(code=code).update(
            gl_account=account, monthly_budget_amount=Decimal(budget)
        )
    centers = {c.code: c for c in CostCenter.objects.all()}
    for field, value, code in _RULES:
        if code in centers:
            CostCenterRule.objects.update_or_create(
                field=field, value=value, defaults={"cost_center": centers[code]}
            )
    for code, name, amount, method, shares in _POOLS:
        pool, _ = SharedCostPool.objects.update_or_create(
            code=code,
            defaults={"name": name, "amount": Decimal(amount), "method": method, "shares": shares},
        )
        pool.full_clean()
