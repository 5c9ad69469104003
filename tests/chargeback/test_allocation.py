"""Largest-remainder apportionment: parts sum to the total exactly, each within one minor
unit of its exact share, leftovers to the largest remainders, ties to the earlier key."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.chargeback.allocation import apportion


def test_a_hundred_three_ways_gives_the_extra_cent_to_the_first_key():
    parts = apportion(Decimal("100.00"), [("a", 1), ("b", 1), ("c", 1)], currency="USD")

    assert parts == {"a": Decimal("33.34"), "b": Decimal("33.33"), "c": Decimal("33.33")}


def test_ties_go_to_the_earlier_key_in_the_order_given():
    parts = apportion(Decimal("100.00"), [("c", 1), ("b", 1), ("a", 1)], currency="USD")

    assert parts == {"c": Decimal("33.34"), "b": Decimal("33.33"), "a": Decimal("33.33")}


def test_two_leftover_cents_go_to_the_largest_remainders_not_the_first_keys():
    # 0.10 by 1:3:3 is 0.0142857.., 0.0428571.., 0.0428571..: floors 1, 4, 4 (9 cents),
    # remainders .43, .29, .29 -> the one cent left goes to "a"
    parts = apportion(
        Decimal("0.10"), [("a", Decimal(1)), ("b", Decimal(3)), ("c", Decimal(3))], currency="USD"
    )

    assert parts == {"a": Decimal("0.02"), "b": Decimal("0.04"), "c": Decimal("0.04")}


def test_twelve_thousand_by_equal_requests():
    parts = apportion(
        Decimal("12000.00"),
        [("a", Decimal(40)), ("b", Decimal(40)), ("c", Decimal(40))],
        currency="USD",
    )

    assert parts == {"a": Decimal("4000.00"), "b": Decimal("4000.00"), "c": Decimal("4000.00")}


def test_yen_has_no_minor_unit():
    parts = apportion(Decimal("1000"), [("a", 1), ("b", 1), ("c", 1)], currency="JPY")

    assert parts == {"a": Decimal("334"), "b": Decimal("333"), "c": Decimal("333")}
    assert all(p == p.to_integral_value() for p in parts.values())


def test_three_decimal_currencies_split_in_fils():
    parts = apportion(Decimal("1.000"), [("a", 1), ("b", 1), ("c", 1)], currency="KWD")

    assert parts == {"a": Decimal("0.334"), "b": Decimal("0.333"), "c": Decimal("0.333")}


def test_all_zero_weights_split_evenly():
    parts = apportion(Decimal("10.00"), [("a", 0), ("b", 0), ("c", 0)], currency="USD")

    assert parts == {"a": Decimal("3.34"), "b": Decimal("3.33"), "c": Decimal("3.33")}


def test_a_zero_weight_gets_nothing_when_others_weigh():
    parts = apportion(Decimal("10.00"), [("a", 0), ("b", 1), ("c", 3)], currency="USD")

    assert parts == {"a": Decimal("0.00"), "b": Decimal("2.50"), "c": Decimal("7.50")}


def test_a_negative_total_splits_like_the_positive_one_with_the_sign():
    parts = apportion(Decimal("-100.00"), [("a", 1), ("b", 1), ("c", 1)], currency="USD")

    assert parts == {"a": Decimal("-33.34"), "b": Decimal("-33.33"), "c": Decimal("-33.33")}


def test_no_weights_no_parts():
    assert apportion(Decimal("5.00"), [], currency="USD") == {}


def test_negative_weights_are_refused():
    with pytest.raises(ValueError, match="negative"):
        apportion(Decimal("5.00"), [("a", Decimal(-1)), ("b", Decimal(2))], currency="USD")


def test_a_total_finer_than_the_minor_unit_is_refused():
    with pytest.raises(ValueError, match="minor unit"):
        apportion(Decimal("5.001"), [("a", 1)], currency="USD")
    with pytest.raises(ValueError, match="minor unit"):
        apportion(Decimal("5.5"), [("a", 1)], currency="JPY")


CURRENCIES = {"USD": 2, "JPY": 0, "KWD": 3}


@st.composite
def splits(draw):
    currency = draw(st.sampled_from(sorted(CURRENCIES)))
    places = CURRENCIES[currency]
    units = draw(st.integers(min_value=-(10**12), max_value=10**12))
    total = Decimal(units).scaleb(-places)
    weights = draw(
        st.lists(
            st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False),
            min_size=1,
            max_size=12,
        )
    )
    return currency, total, [(i, w) for i, w in enumerate(weights)]


@given(splits())
def test_parts_always_sum_to_the_total_and_stay_within_one_minor_unit(split):
    currency, total, weights = split
    unit = Decimal(1).scaleb(-CURRENCIES[currency])

    parts = apportion(total, weights, currency=currency)

    assert sum(parts.values(), Decimal(0)) == total
    assert list(parts) == [k for k, _ in weights]
    whole = sum((w for _, w in weights), Decimal(0))
    for key, weight in weights:
        exact = total * weight / whole if whole else total / len(weights)
        assert abs(parts[key] - exact) < unit
        assert parts[key] == parts[key].quantize(unit)
