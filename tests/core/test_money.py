"""Money: one Decimal value type, one rounding rule (ROUND_HALF_UP to the minor unit)."""

import dataclasses
from decimal import Decimal

import pytest

from apps.core.money import Money, currency_is_known, minor_units, quantize


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        pytest.param("2.345", "USD", "2.35", id="usd-half-up"),
        pytest.param("2.344", "USD", "2.34", id="usd-down"),
        pytest.param("2.335", "USD", "2.34", id="usd-half-up-not-to-even"),
        pytest.param("-2.345", "USD", "-2.35", id="usd-negative-away-from-zero"),
        pytest.param("0.004999", "USD", "0.00", id="usd-below-half-cent"),
        pytest.param("7", "USD", "7.00", id="usd-integer-gets-cents"),
        pytest.param("0.5", "JPY", "1", id="jpy-half-up"),
        pytest.param("2.5", "JPY", "3", id="jpy-not-bankers"),
        pytest.param("1.4999", "JPY", "1", id="jpy-down"),
        pytest.param("1.0005", "KWD", "1.001", id="kwd-half-up"),
        pytest.param("1.0004", "KWD", "1.000", id="kwd-down"),
        pytest.param("0.000002", "USD", "0.00", id="sub-micro-price"),
    ],
)
def test_quantize_rounds_half_up_to_the_minor_unit(amount, currency, expected):
    result = quantize(Decimal(amount), currency)

    # same value and same exponent: "7.00", not "7"
    assert isinstance(result, Decimal)
    assert str(result) == expected


def test_sums_of_exact_prices_are_rounded_once():
    # 0.000002 x 3 stays exact until the one rounding
    unit = Decimal("0.000002")
    total = unit + unit + unit
    assert total == Decimal("0.000006")
    assert quantize(total * 1000, "USD") == Decimal("0.01")  # 0.006 -> 0.01


@pytest.mark.parametrize(("currency", "places"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3)])
def test_minor_units(currency, places):
    assert minor_units(currency) == places


@pytest.mark.parametrize("code", ["USD", "EUR", "JPY", "KWD", "CHF"])
def test_known_currencies(code):
    assert currency_is_known(code)


@pytest.mark.parametrize("code", ["usd", "US", "USDX", "", "ABC", "U$D"])
def test_unknown_currencies(code):
    assert not currency_is_known(code)


def test_money_adds_and_subtracts_exactly_in_one_currency():
    a, b = Money(Decimal("0.1"), "USD"), Money(Decimal("0.2"), "USD")

    assert a + b == Money(Decimal("0.3"), "USD")
    assert b - a == Money(Decimal("0.1"), "USD")
    assert str(a + b) == "0.3 USD"


def test_money_rounds_to_its_currency():
    assert Money(Decimal("2.345"), "USD").rounded() == Money(Decimal("2.35"), "USD")
    assert Money(Decimal("0.5"), "JPY").rounded() == Money(Decimal("1"), "JPY")
    assert Money(Decimal("1.0005"), "KWD").rounded() == Money(Decimal("1.001"), "KWD")


@pytest.mark.parametrize("amount", [0.1, 1, "0.1", None], ids=["float", "int", "str", "none"])
def test_money_refuses_anything_but_decimal(amount):
    with pytest.raises(TypeError, match="must be Decimal"):
        Money(amount, "USD")


def test_money_refuses_to_mix_currencies():
    usd, eur = Money(Decimal("1"), "USD"), Money(Decimal("1"), "EUR")

    with pytest.raises(ValueError, match="cannot combine USD with EUR"):
        usd + eur
    with pytest.raises(ValueError, match="cannot combine USD with EUR"):
        usd - eur


def test_money_is_immutable():
    money = Money(Decimal("1"), "USD")

    with pytest.raises(dataclasses.FrozenInstanceError):
        money.amount = Decimal("2")
