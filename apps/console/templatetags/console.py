"""Template filters of the console: money shown at the currency's minor unit, percentages,
and chart data as JSON for app.js (decimals as strings, never floats: Chart.js reads numeric
strings as numbers)."""

import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django import template

from apps.core.money import quantize

register = template.Library()
NONE = "\u2013"  # an en dash: no figure


@register.filter
def money(amount: Decimal | None, currency: str) -> str:
    """``1,234.50 USD``; an en dash for no amount."""
    if amount is None:
        return NONE
    return f"{quantize(Decimal(amount), currency):,} {currency}"


@register.filter
def pct(value: Decimal | None) -> str:
    return NONE if value is None else f"{value} %"


@register.filter
def signed_pct(value: Decimal | None) -> str:
    """A change with its sign: ``+12.5 %``, ``-3.0 %``; an en dash without a base."""
    if value is None:
        return NONE
    return f"{'+' if value > 0 else ''}{value} %"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"{type(value).__name__} is not chart data")


@register.filter
def as_json(value: Any) -> str:
    """JSON for a data attribute; the template escapes it like any other text."""
    return json.dumps(value, default=_plain)


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


@register.filter
def figure(value: Any) -> Any:
    """A metric's exact figure shown to 4 decimal places (the API keeps every digit); text
    and whole numbers as they are."""
    number = _decimal(value)
    if number is None or not number.is_finite():
        return NONE if value is None else value
    if number == number.to_integral_value():
        return f"{number:,.0f}"
    return f"{number.quantize(Decimal('0.0001'), rounding=ROUND_HALF_UP):,}"


@register.filter
def ratio_pct(value: Any) -> str:
    """A growth ratio (0.25) as a signed percentage (+25.0 %)."""
    number = _decimal(value)
    if number is None:
        return NONE
    return signed_pct((number * 100).quantize(Decimal("0.1")))
