"""Full cost per call: direct cost plus a share of the shared-cost pools.

Each pool is allocated to cost centers as on the statements (exact, before rounding); a cost
center's allocated cost then goes to the groups asked for in proportion to their calls within
that cost center (a call is the unit a shared platform serves).
"""

from collections import defaultdict
from decimal import Decimal
from typing import Any
from uuid import UUID

from apps.chargeback.services.mapping import CostCenterMap
from apps.chargeback.services.statements import period_allocations
from apps.costs.errors import AnalyticsQueryInvalid
from apps.costs.metrics import per, report
from apps.costs.selectors import GROUPS, CostPeriod, GroupKey, cost_totals

ZERO = Decimal(0)
_MAPPED = ("team", "endpoint", "feature", "service")


def _figures(
    period: CostPeriod, group_by: tuple[str, ...], tenant_id: UUID | None
) -> dict[GroupKey, dict[str, Any]]:
    # The pools are shared by every tenant's calls: spread them over all calls of each cost
    # center, then keep the groups of the tenant asked for, if one is.
    dims = tuple(dict.fromkeys((*group_by, *_MAPPED, *(("tenant",) if tenant_id else ()))))
    mapping = CostCenterMap.load()
    groups: dict[GroupKey, dict[str, Any]] = {}
    calls_in: dict[Any, dict[GroupKey, int]] = defaultdict(lambda: defaultdict(int))
    center_calls: dict[Any, int] = defaultdict(int)
    for key, totals in cost_totals(period=period, group_by=dims, sums=("cost",)).items():
        values = dict(zip(dims, key, strict=True))
        center = mapping.cost_center_of(values)
        center_calls[center] += totals["calls"]
        if tenant_id is not None and values["tenant"] != str(tenant_id):
            continue
        group = tuple(values[g] for g in group_by)
        item = groups.setdefault(group, {"calls": 0, "cost": ZERO, "allocated": ZERO})
        item["calls"] += totals["calls"]
        item["cost"] += totals["cost"]
        calls_in[center][group] += totals["calls"]
    for center_id, center_figures in period_allocations(period).items():
        allocated = sum((a["exact"] for a in center_figures.allocated), ZERO)
        whole = center_calls.get(center_id, 0)
        if not allocated or not whole:
            continue
        for group, calls in calls_in.get(center_id, {}).items():
            groups[group]["allocated"] += allocated * calls / whole
    return {
        k: {
            "value": per(v["cost"] + v["allocated"], v["calls"]),
            "direct_cost_per_call": per(v["cost"], v["calls"]),
            "calls": v["calls"],
            "direct_cost": v["cost"],
            "allocated_cost": v["allocated"],
        }
        for k, v in groups.items()
    }


def full_cost_per_call_metric(
    *, period: CostPeriod, group_by: tuple[str, ...] | None, tenant_id: UUID | None = None
) -> dict[str, Any]:
    groups = () if group_by is None else group_by
    for g in groups:
        if g not in GROUPS:
            raise AnalyticsQueryInvalid(
                f"group_by: {g!r} is not one of {', '.join(GROUPS)}", field="group_by"
            )
    previous = period.previous()
    return report(
        metric="full_cost_per_call",
        period=period,
        previous=previous,
        group_by=groups,
        current=_figures(period, groups, tenant_id),
        before=_figures(previous, groups, tenant_id),
    )
