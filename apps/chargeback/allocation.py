"""Splitting an amount into parts that sum to it exactly: pure functions on decimals.

Largest remainder: every part gets the floor of its exact share in the currency's minor
units, and the units left over go one each to the largest fractional remainders (ties to the
earlier key). So 100.00 three ways is 33.34, 33.33, 33.33.
"""

from collections.abc import Hashable, Sequence
from decimal import ROUND_FLOOR, Decimal

from apps.core.money import minor_units, quantize


def apportion(
    total: Decimal, weights: Sequence[tuple[Hashable, Decimal]], *, currency: str
) -> dict[Hashable, Decimal]:
    """Split ``total`` (already in the currency's minor unit, may be negative) over
    ``weights`` (non-negative; keys in tie-break order). All-zero weights split evenly."""
    if not weights:
        return {}
    if any(w < 0 for _, w in weights):
        raise ValueError("weights must not be negative")
    unit = Decimal(1).scaleb(-minor_units(currency))
    if quantize(total, currency) != total:
        raise ValueError(f"{total} is not in {currency}'s minor unit")
    sign = -1 if total < 0 else 1
    units = int((abs(total) / unit).to_integral_value())
    whole = sum((w for _, w in weights), Decimal(0))
    if whole == 0:
        weights = [(k, Decimal(1)) for k, _ in weights]
        whole = Decimal(len(weights))
    floors: list[int] = []
    remainders: list[Decimal] = []
    for _, weight in weights:
        exact = Decimal(units) * weight / whole
        floor = int(exact.to_integral_value(rounding=ROUND_FLOOR))
        floors.append(floor)
        remainders.append(exact - floor)
    left = units - sum(floors)
    for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        floors[index] += 1
    return {key: sign * floors[i] * unit for i, (key, _) in enumerate(weights)}
