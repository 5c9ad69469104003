"""Money: one value type and one rounding rule for the whole product.

Amounts are ``Decimal`` end to end. Prices keep full precision; an amount is rounded once, to the
currency's ISO 4217 minor unit, with ROUND_HALF_UP, by :func:`quantize`. This module imports no
Django so that the pure rating engine can use it.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from babel.numbers import get_currency_precision, list_currencies


@cache
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def currency_is_known(code: str) -> bool:
    """True for an ISO 4217 code Babel's CLDR data knows (upper case, three letters)."""
    return len(code) == 3 and code.isupper() and code in _known_currencies()


@cache
def minor_units(currency: str) -> int:
    """Decimal places of the currency's minor unit: JPY 0, USD 2, KWD 3."""
    return int(get_currency_precision(currency))


@cache
def _exponent(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round ``amount`` to ``currency``'s minor unit, half away from zero (ROUND_HALF_UP)."""
    return amount.quantize(_exponent(currency), rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency. Arithmetic refuses to mix currencies."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError(f"Money amount must be Decimal, got {type(self.amount).__name__}")

    def __add__(self, other: "Money") -> "Money":
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def rounded(self) -> "Money":
        return Money(quantize(self.amount, self.currency), self.currency)

    def _same_currency(self, other: "Money") -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
