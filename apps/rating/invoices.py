"""Pricing one invoice: its lines, each rounded once, and the totals those lines add up to.

Rounding happens here and only here (``_rounded``): every line's exact amount is rounded once to
the currency's minor unit, half up; the subtotal is the sum of rounded lines, credits apply to
it, and tax is the rounded product of the taxable amount and the rate.
"""

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from apps.core.money import quantize
from apps.rating.charges import EXACT, ZERO, ChargeSpec, RatedCharge, TierSlice, charge_rate


class LineKind(StrEnum):
    BASE_FEE = "base_fee"
    USAGE = "usage"
    MINIMUM = "minimum"
    ADJUSTMENT = "adjustment"
    CREDIT_PACK = "credit_pack"


@dataclass(frozen=True, slots=True)
class Share:
    """The part of a period a fee is due for: ``days`` of ``of_days`` (1 of 1 for all of it)."""

    days: int
    of_days: int

    def __post_init__(self) -> None:
        if not 0 <= self.days <= self.of_days or self.of_days < 1:
            raise ValueError(f"share {self.days}/{self.of_days} must be within 0..1")

    def of(self, amount: Decimal) -> Decimal:
        if self.days == self.of_days:
            return amount
        return EXACT.divide(EXACT.multiply(amount, Decimal(self.days)), Decimal(self.of_days))


WHOLE = Share(1, 1)


@dataclass(frozen=True, slots=True)
class UsageInput:
    """One charge of the rate card and the quantity its meter measured for it."""

    key: str  # stable within the rate card: which charge this is
    description: str
    meter: str
    charge: ChargeSpec
    quantity: Decimal
    dimensions: tuple[tuple[str, str], ...] = ()  # the charge's filter


@dataclass(frozen=True, slots=True)
class AdjustmentInput:
    """A correction for an earlier, finalized period, priced by the caller (exact amount)."""

    key: str
    description: str
    meter: str
    quantity: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class InvoiceInput:
    currency: str
    base_fee: Decimal = ZERO  # for a whole period
    minimum_commitment: Decimal = ZERO  # for a whole period
    share: Share = WHOLE  # of the period the subscription was active
    # Of the period the base fee is due for, when not ``share`` (trial days are free).
    base_fee_share: Share | None = None
    trial: bool = False  # a trial waives the base fee
    usage: tuple[UsageInput, ...] = ()
    adjustments: tuple[AdjustmentInput, ...] = ()
    extra_lines: tuple["ExtraLine", ...] = ()
    credits_available: Decimal = ZERO
    tax_rate: Decimal = ZERO  # a fraction: 0.2 is 20 %
    plan_name: str = ""


@dataclass(frozen=True, slots=True)
class ExtraLine:
    """A line priced outright (a credit pack's price): amount exact, rounded like the rest."""

    kind: LineKind
    key: str
    description: str
    quantity: Decimal
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class PricedLine:
    kind: LineKind
    key: str
    description: str
    amount: Decimal  # rounded to the currency's minor unit
    exact_amount: Decimal
    meter: str = ""
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    tiers: tuple[TierSlice, ...] = ()
    dimensions: tuple[tuple[str, str], ...] = ()
    rated: RatedCharge | None = None


@dataclass(frozen=True, slots=True)
class PricedInvoice:
    currency: str
    lines: tuple[PricedLine, ...]
    subtotal: Decimal
    credits_applied: Decimal
    tax: Decimal
    total: Decimal


def _rounded(amount: Decimal, currency: str) -> Decimal:
    """The one rounding of Percall's money: to the currency's minor unit, half up."""
    return quantize(amount, currency)


def invoice_price(spec: InvoiceInput) -> PricedInvoice:
    """Price every line of an invoice and add them up. Lines with a zero amount are kept for
    usage (the partner sees the meter read 0) and dropped for fees and true-ups."""
    currency = spec.currency
    lines: list[PricedLine] = []
    fee_share = spec.base_fee_share or spec.share
    exact = fee_share.of(spec.base_fee) if not spec.trial else ZERO
    if _rounded(exact, currency):  # a fee that rounds to nothing is no line at all
        description = f"{spec.plan_name} base fee".strip()
        if fee_share.days != fee_share.of_days:
            description += f" ({fee_share.days} of {fee_share.of_days} days)"
        lines.append(
            PricedLine(LineKind.BASE_FEE, "base_fee", description, _rounded(exact, currency), exact)
        )
    usage_total = ZERO
    for usage in spec.usage:
        rated = charge_rate(usage.charge, usage.quantity)
        amount = _rounded(rated.amount, currency)
        usage_total += amount
        lines.append(
            PricedLine(
                LineKind.USAGE,
                usage.key,
                usage.description,
                amount,
                rated.amount,
                meter=usage.meter,
                quantity=usage.quantity,
                unit_price=rated.unit_price,
                tiers=rated.slices,
                dimensions=usage.dimensions,
                rated=rated,
            )
        )
    commitment = _rounded(spec.share.of(spec.minimum_commitment), currency)
    if commitment > usage_total:
        shortfall = commitment - usage_total
        lines.append(
            PricedLine(
                LineKind.MINIMUM,
                "minimum",
                f"Minimum commitment true-up (commitment {commitment}, usage {usage_total})",
                shortfall,
                shortfall,
            )
        )
    for adjustment in spec.adjustments:
        lines.append(
            PricedLine(
                LineKind.ADJUSTMENT,
                adjustment.key,
                adjustment.description,
                _rounded(adjustment.amount, currency),
                adjustment.amount,
                meter=adjustment.meter,
                quantity=adjustment.quantity,
            )
        )
    for extra in spec.extra_lines:
        exact = EXACT.multiply(extra.quantity, extra.unit_price)
        lines.append(
            PricedLine(
                extra.kind,
                extra.key,
                extra.description,
                _rounded(exact, currency),
                exact,
                quantity=extra.quantity,
                unit_price=extra.unit_price,
            )
        )
    return invoice_total(currency, tuple(lines), spec.credits_available, spec.tax_rate)


def invoice_total(
    currency: str, lines: tuple[PricedLine, ...], credits_available: Decimal, tax_rate: Decimal
) -> PricedInvoice:
    """Totals of already rounded lines: subtotal, credits applied (never more than the subtotal
    nor less than 0), tax on what remains, total."""
    subtotal = sum((line.amount for line in lines), _rounded(ZERO, currency))
    credits_applied = max(ZERO, min(credits_available, subtotal))
    tax = _rounded(EXACT.multiply(subtotal - credits_applied, tax_rate), currency)
    total = subtotal - credits_applied + tax
    return PricedInvoice(currency, lines, subtotal, credits_applied, tax, total)
