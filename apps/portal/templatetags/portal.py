"""Template filters for the portal: money in its currency's minor unit, quantities in full."""

from decimal import Decimal

from django import template

from apps.core.money import quantize

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str) -> str:
    """'1,234.50 USD': rounded to the currency's minor unit (ROUND_HALF_UP), grouped."""
    if amount is None:
        return "—"
    return f"{quantize(Decimal(amount), currency):,} {currency}"


@register.filter
def quantity(value: Decimal | int | str | None) -> str:
    """A quantity in full and grouped, never in exponent form: '1,500,000', '0.000002'."""
    if value is None or value == "":
        return "—"
    number = Decimal(value).normalize()
    if number == number.to_integral_value():
        return f"{number.quantize(Decimal(1)):,}"
    return f"{number:,f}"


@register.filter
def percent(rate: Decimal | str | None) -> str:
    """A fraction as a percentage: 0.2 is '20 %', 0.0825 is '8.25 %'."""
    if rate is None or rate == "":
        return "—"
    return f"{quantity(Decimal(rate) * 100)} %"
