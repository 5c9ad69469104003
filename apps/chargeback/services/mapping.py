"""Which cost center a call's cost belongs to.

An event whose ``team`` is a cost center's code belongs to it; otherwise the rules decide,
the most specific dimension first: endpoint, then feature, then service. What no rule maps
is Unallocated (None): shown on its own statement, never dropped.
"""

from dataclasses import dataclass
from typing import Any

from apps.chargeback.models import CostCenterRule
from apps.tenants.models import CostCenter

_ORDER = (
    CostCenterRule.Field.ENDPOINT,
    CostCenterRule.Field.FEATURE,
    CostCenterRule.Field.SERVICE,
)


@dataclass(frozen=True)
class CostCenterMap:
    by_code: dict[str, Any]
    rules: dict[str, dict[str, Any]]  # field -> value -> cost center

    @classmethod
    def load(cls) -> "CostCenterMap":
        rules: dict[str, dict[str, Any]] = {f: {} for f in _ORDER}
        for rule in CostCenterRule.objects.all():
            rules[rule.field][rule.value] = rule.cost_center_id
        return cls(dict(CostCenter.objects.values_list("code", "id")), rules)

    def cost_center_of(self, row: dict[str, Any]) -> Any:
        team = row.get("team") or ""
        if team in self.by_code:
            return self.by_code[team]
        for name in _ORDER:
            value = row.get(name) or ""
            if value and value in self.rules[name]:
                return self.rules[name][value]
        return None
