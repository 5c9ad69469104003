"""Pricing one charge: a quantity of a meter through its pricing model.

Amounts here are exact (``Decimal`` at up to 40 significant digits, never rounded): invoices
round each line once, in ``invoices``. Quantities are never rounded either: 0.5 GB is 0.5 GB.
"""

from dataclasses import dataclass, field
from decimal import Context, Decimal
from enum import StrEnum

ZERO = Decimal(0)
ONE = Decimal(1)
# Wide enough that no product or quotient of in-range prices and quantities is rounded before
# an invoice line rounds it to the currency's minor unit.
EXACT = Context(prec=40)


class PricingModel(StrEnum):
    PER_UNIT = "per_unit"  # unit_price per package_size units, prorated exactly
    GRADUATED = "graduated"  # each unit at its own tier's price
    VOLUME = "volume"  # every unit at the price of the tier the total reaches
    PACKAGE = "package"  # each started package_size costs package_price


class ChargeSpecInvalid(ValueError):
    """A charge that cannot be priced; ``path`` is relative to the charge ("tiers[1].up_to")."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Tier:
    """One price step. ``up_to`` is the inclusive cumulative upper bound of units (None: no
    bound, only on the last tier); ``flat_fee`` is charged once when any unit falls in it."""

    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class ChargeSpec:
    """How one charge prices a quantity. Fields that a model does not use are ignored."""

    model: PricingModel
    unit_price: Decimal = ZERO  # per_unit: per package_size units
    package_size: Decimal = ONE  # per_unit and package
    package_price: Decimal = ZERO  # package
    free_units: Decimal = ZERO  # deducted before pricing, whatever the model
    tiers: tuple[Tier, ...] = ()  # graduated and volume


@dataclass(frozen=True, slots=True)
class TierSlice:
    """The part of a quantity one tier priced: units in ``(after, up_to]``."""

    tier: int  # 1-based, as people count tiers
    after: Decimal  # exclusive lower bound of cumulative units
    up_to: Decimal | None
    quantity: Decimal
    unit_price: Decimal
    flat_fee: Decimal
    amount: Decimal  # exact


@dataclass(frozen=True, slots=True)
class RatedCharge:
    quantity: Decimal  # as measured
    free_units: Decimal  # deducted (at most the quantity)
    billable: Decimal  # quantity - free_units
    amount: Decimal  # exact, unrounded
    unit_price: Decimal | None = None  # per_unit, volume: the price each unit paid
    packages: Decimal | None = None  # package: packages started
    slices: tuple[TierSlice, ...] = field(default=())


def charge_spec_check(spec: ChargeSpec) -> None:
    """Raise ChargeSpecInvalid naming the field when ``spec`` cannot price every quantity."""
    for name in ("unit_price", "package_price", "free_units"):
        value = getattr(spec, name)
        if not value.is_finite() or value < 0:
            raise ChargeSpecInvalid(name, f"{value} must be a number of at least 0")
    sized = spec.model in (PricingModel.PER_UNIT, PricingModel.PACKAGE)
    if sized and (not spec.package_size.is_finite() or spec.package_size <= 0):
        raise ChargeSpecInvalid("package_size", f"{spec.package_size} must be more than 0")
    if spec.model in (PricingModel.GRADUATED, PricingModel.VOLUME):
        _tiers_check(spec.tiers)


def _tiers_check(tiers: tuple[Tier, ...]) -> None:
    if not tiers:
        raise ChargeSpecInvalid("tiers", "at least one tier is needed")
    previous = ZERO
    for index, tier in enumerate(tiers):
        path = f"tiers[{index}]"
        last = index == len(tiers) - 1
        for name in ("unit_price", "flat_fee"):
            value = getattr(tier, name)
            if not value.is_finite() or value < 0:
                raise ChargeSpecInvalid(f"{path}.{name}", f"{value} must be at least 0")
        if tier.up_to is None:
            if not last:
                raise ChargeSpecInvalid(
                    f"{path}.up_to", "null (no bound) is only allowed on the last tier"
                )
            continue
        if last:
            raise ChargeSpecInvalid(
                f"{path}.up_to", f"{tier.up_to}: the last tier must have up_to null (no bound)"
            )
        if not tier.up_to.is_finite() or tier.up_to <= previous:
            raise ChargeSpecInvalid(
                f"{path}.up_to",
                f"{tier.up_to} must be more than the previous tier's bound ({previous})",
            )
        previous = tier.up_to


def charge_rate(spec: ChargeSpec, quantity: Decimal) -> RatedCharge:
    """Price ``quantity`` (at least 0) units through ``spec``. The amount is exact."""
    if not quantity.is_finite() or quantity < 0:
        raise ValueError(f"quantity {quantity} must be a number of at least 0")
    free = min(spec.free_units, quantity)
    billable = EXACT.subtract(quantity, free)
    if spec.model is PricingModel.PER_UNIT:
        price = EXACT.divide(spec.unit_price, spec.package_size)
        # Multiply, then divide once: 0.01 per 3 units x 16.5 units is exactly 0.055, where the
        # rounded per-unit price would give 0.0549...9 and a line of 0.05.
        amount = EXACT.divide(EXACT.multiply(billable, spec.unit_price), spec.package_size)
        return RatedCharge(quantity, free, billable, amount, unit_price=price)
    if spec.model is PricingModel.PACKAGE:
        packages = EXACT.divide_int(billable, spec.package_size)
        if EXACT.multiply(packages, spec.package_size) < billable:
            packages += 1  # a started package is a whole package
        amount = EXACT.multiply(packages, spec.package_price)
        return RatedCharge(quantity, free, billable, amount, packages=packages)
    if spec.model is PricingModel.GRADUATED:
        slices = _graduated(spec.tiers, billable)
        amount = ZERO
        for piece in slices:
            amount = EXACT.add(amount, piece.amount)  # sum() would round to 28 digits
        return RatedCharge(quantity, free, billable, amount, slices=slices)
    return _volume(spec.tiers, quantity, free, billable)


def _graduated(tiers: tuple[Tier, ...], billable: Decimal) -> tuple[TierSlice, ...]:
    slices = []
    after = ZERO
    for number, tier in enumerate(tiers, start=1):
        if billable <= after:
            break
        top = billable if tier.up_to is None else min(billable, tier.up_to)
        units = EXACT.subtract(top, after)
        amount = EXACT.add(EXACT.multiply(units, tier.unit_price), tier.flat_fee)
        slices.append(
            TierSlice(number, after, tier.up_to, units, tier.unit_price, tier.flat_fee, amount)
        )
        if tier.up_to is None:
            break
        after = tier.up_to
    return tuple(slices)


def _volume(
    tiers: tuple[Tier, ...], quantity: Decimal, free: Decimal, billable: Decimal
) -> RatedCharge:
    after = ZERO
    for number, tier in enumerate(tiers, start=1):
        if tier.up_to is None or billable <= tier.up_to:
            if billable == 0:
                return RatedCharge(quantity, free, billable, ZERO, unit_price=tier.unit_price)
            amount = EXACT.add(EXACT.multiply(billable, tier.unit_price), tier.flat_fee)
            reached = TierSlice(
                number, after, tier.up_to, billable, tier.unit_price, tier.flat_fee, amount
            )
            return RatedCharge(
                quantity, free, billable, amount, unit_price=tier.unit_price, slices=(reached,)
            )
        after = tier.up_to
    raise AssertionError("unreachable: the last tier has no bound")  # charge_spec_check
