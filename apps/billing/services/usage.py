"""What each charge of a rate card measured in a billing period.

Additive meters (count, sum, max) come from the hourly meter rollups for many periods at once;
unique counts and latest values, which do not add across hours, from raw events. A charge's
filter picks groups of its meter (``{model: gpt-4o}``): its quantity is over those groups.
"""

from dataclasses import dataclass
from decimal import Decimal

from apps.catalog.models import Charge
from apps.metering.models import Meter
from apps.metering.selectors import (
    MeterTotal,
    MeterTotals,
    UsageWindow,
    meter_period_totals,
    meter_period_uniques,
    meter_quantities,
)

ZERO = Decimal(0)


@dataclass(frozen=True)
class ChargeUsage:
    charge: Charge
    quantity: Decimal


def _matches(meter: Meter, group: tuple[str, ...], filters: dict[str, str]) -> bool:
    names = list(meter.group_by or [])
    return all(group[names.index(name)] == value for name, value in filters.items())


def _additive(meter: Meter, groups: dict[tuple[str, ...], MeterTotal], filters: dict) -> Decimal:
    picked = [total for group, total in groups.items() if _matches(meter, group, filters)]
    if meter.aggregation == Meter.Aggregation.COUNT:
        return Decimal(sum(t.events for t in picked))
    if meter.aggregation == Meter.Aggregation.SUM:
        return sum((t.sum for t in picked), ZERO)
    maxima = [t.max for t in picked if t.max is not None]
    return max(maxima) if maxima else ZERO


def charges_usage(
    *, windows: dict[UsageWindow, list[Charge]]
) -> dict[UsageWindow, list[ChargeUsage]]:
    """The quantity of every charge for its window (a tenant's billing period)."""
    meters = {c.meter_id: c.meter for charges in windows.values() for c in charges}
    totals: dict[UsageWindow, MeterTotals] = meter_period_totals(
        meters=list(meters.values()), windows=list(windows)
    )
    uniques = _uniques(windows, meters)
    result: dict[UsageWindow, list[ChargeUsage]] = {}
    for window, charges in windows.items():
        priced = []
        for charge in charges:
            meter = meters[charge.meter_id]
            filters = dict(charge.filters or {})
            if meter.aggregation == Meter.Aggregation.UNIQUE_COUNT:
                quantity = uniques[_unique_key(charge)][window]
            elif meter.aggregation == Meter.Aggregation.LATEST:
                quantity = _latest(meter, window, filters)
            else:
                quantity = _additive(meter, totals[window].get(meter.id, {}), filters)
            priced.append(ChargeUsage(charge, quantity))
        result[window] = priced
    return result


def _unique_key(charge: Charge) -> tuple[int, tuple[tuple[str, str], ...]]:
    return charge.meter_id, tuple(sorted((charge.filters or {}).items()))


def _uniques(
    windows: dict[UsageWindow, list[Charge]], meters: dict[int, Meter]
) -> dict[tuple[int, tuple[tuple[str, str], ...]], dict[UsageWindow, Decimal]]:
    """Distinct values over each whole period (over a charge's picked groups together), one
    query per unique-count meter and filter for all windows."""
    wanted: dict[tuple[int, tuple[tuple[str, str], ...]], list[UsageWindow]] = {}
    for window, charges in windows.items():
        for charge in charges:
            if meters[charge.meter_id].aggregation == Meter.Aggregation.UNIQUE_COUNT:
                wanted.setdefault(_unique_key(charge), []).append(window)
    return {
        key: meter_period_uniques(meter=meters[key[0]], windows=found, also=dict(key[1]))
        for key, found in wanted.items()
    }


def _latest(meter: Meter, window: UsageWindow, filters: dict[str, str]) -> Decimal:
    """The sum of each picked group's latest value in the period."""
    found = meter_quantities(
        meter=meter,
        tenant_id=window.tenant_id,
        start=window.start,
        end=window.end,
        also=filters,
    )
    return sum(found.values(), ZERO)
