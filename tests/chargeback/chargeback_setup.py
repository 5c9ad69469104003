"""Shared setup for the chargeback tests: cost centers, events with their own USD cost
through the real ingestion and both rollups, and the October 2026 period."""

from decimal import Decimal
from itertools import count

from apps.chargeback.models import CostCenterRule, SharedCostPool
from apps.costs.selectors import CostPeriod, cost_period_parse
from apps.costs.services.rollup import cost_rollup_pending_run
from apps.metering.services.rollup import rollup_pending_run
from apps.tenants.models import CostCenter
from tests.metering.ingesting import ingest_events

NOW = "2026-11-02T00:00:00Z"
_ids = count(1)


def october() -> CostPeriod:
    return cost_period_parse("2026-10")


def center(code: str, budget: str | None = None, **kwargs) -> CostCenter:
    kwargs.setdefault("name", code.title())
    kwargs.setdefault("gl_account", f"6{len(code):03d}-{code}")
    return CostCenter.objects.create(
        code=code,
        monthly_budget_amount=None if budget is None else Decimal(budget),
        **kwargs,
    )


def rule(field: str, value: str, cost_center: CostCenter) -> CostCenterRule:
    return CostCenterRule.objects.create(field=field, value=value, cost_center=cost_center)


def pool(code: str, amount: str, method: str, targets=(), **kwargs) -> SharedCostPool:
    kwargs.setdefault("name", code.replace("-", " ").title())
    created = SharedCostPool.objects.create(
        code=code, amount=Decimal(amount), method=method, **kwargs
    )
    created.targets.set(targets)
    return created


def call(
    cost: str | None = "1.00",
    *,
    day: int = 5,
    tenant: str = "acme",
    **attributes,
) -> dict:
    """One LLM call on 2026-10-``day`` carrying its own USD cost."""
    event = {
        "id": f"cb-{next(_ids)}",
        "type": "llm.call",
        "tenant": tenant,
        "timestamp": f"2026-10-{day:02d}T12:00:00Z",
        "provider": "openai",
        "model": "gpt-4o",
        **attributes,
    }
    if cost is not None:
        event["cost"] = cost
        event.setdefault("cost_currency", "USD")
    return event


def record(*events: dict) -> None:
    """Ingest, then run the usage and cost rollups, as the scheduled jobs would."""
    ingest_events(*events)
    rollup_pending_run()
    cost_rollup_pending_run()
