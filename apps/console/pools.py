"""The shared-cost pools of a month and how they would be allocated to cost centers now
(chargeback's own allocation, computed from the cost rollups; nothing is stored)."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from apps.chargeback.models import SharedCostPool
from apps.chargeback.services.statements import period_allocations
from apps.costs.selectors import CostPeriod
from apps.tenants.models import CostCenter


@dataclass(frozen=True)
class PoolPreview:
    pool: SharedCostPool
    parts: list[tuple[str, Decimal, Decimal | None]]  # (cost center, amount, weight)


def allocation_preview(*, period: CostPeriod) -> list[PoolPreview]:
    """Every pool that applies in the month with its parts per cost center ('Unallocated'
    where no one shares it), in pool and cost-center code order."""
    centers = period_allocations(period)
    names: dict[Any, str] = dict(CostCenter.objects.values_list("id", "code"))
    by_pool: dict[int, PoolPreview] = {}
    for center_id, center in centers.items():
        for part in center.allocated:
            pool = part["pool"]
            preview = by_pool.setdefault(pool.pk, PoolPreview(pool, []))
            label = names.get(center_id, "Unallocated")
            preview.parts.append((label, part["amount"], part["weight"]))
    for preview in by_pool.values():
        preview.parts.sort(key=lambda p: p[0])
    return sorted(by_pool.values(), key=lambda p: p.pool.code)
