"""Pricing one charge: every pricing model, tier boundaries, tiny prices, free units, spec checks.

Expected amounts are worked out by hand in each row (the arithmetic is in the comment); amounts
from ``charge_rate`` are exact, so they are compared before any rounding.
"""

from decimal import Decimal

import pytest

from apps.rating.charges import (
    ChargeSpec,
    ChargeSpecInvalid,
    PricingModel,
    Tier,
    charge_rate,
    charge_spec_check,
)

D = Decimal


def per_unit(price: str, size: str = "1", free: str = "0") -> ChargeSpec:
    return ChargeSpec(
        PricingModel.PER_UNIT, unit_price=D(price), package_size=D(size), free_units=D(free)
    )


def package(price: str, size: str, free: str = "0") -> ChargeSpec:
    return ChargeSpec(
        PricingModel.PACKAGE, package_price=D(price), package_size=D(size), free_units=D(free)
    )


def tiered(model: PricingModel, *tiers: tuple, free: str = "0") -> ChargeSpec:
    """Tiers as (up_to or None, unit_price[, flat_fee]) string tuples."""
    built = tuple(
        Tier(
            None if bound is None else D(bound),
            D(price),
            D(rest[0]) if rest else D(0),
        )
        for bound, price, *rest in tiers
    )
    return ChargeSpec(model, tiers=built, free_units=D(free))


# ---------------------------------------------------------------------------------------------
# per_unit: unit_price per package_size units, prorated exactly, quantity never rounded


@pytest.mark.parametrize(
    ("spec", "quantity", "expected"),
    [
        # 2.50 per 1,000,000 tokens: 1,234,567 x 2.50 / 1,000,000 = 3,086,417.5 / 1,000,000
        pytest.param(per_unit("2.50", "1000000"), "1234567", D("3.0864175"), id="per-million"),
        # 0.000002 per event x 1,000,000 events = 2 exactly
        pytest.param(per_unit("0.000002"), "1000000", D("2"), id="tiny-price-million-events"),
        # 0.15 per 1,000,000 tokens x 1,000,000 = 0.15
        pytest.param(per_unit("0.15", "1000000"), "1000000", D("0.15"), id="0.15-per-million"),
        # 0.15 per 1,000,000 tokens x 2,500,000 = 0.375
        pytest.param(per_unit("0.15", "1000000"), "2500000", D("0.375"), id="2.5-million"),
        # 0.15 per 1,000,000 tokens x 1 token = 0.00000015, kept, not rounded to 0
        pytest.param(per_unit("0.15", "1000000"), "1", D("0.00000015"), id="one-token"),
        # 0.09 per GB x 0.5 GB = 0.045
        pytest.param(per_unit("0.09"), "0.5", D("0.045"), id="half-a-gb"),
        # 0.10 per unit, first 100 free: (250 - 100) x 0.10 = 15
        pytest.param(per_unit("0.10", free="100"), "250", D("15"), id="free-units"),
        # 40 used, 100 free: nothing billable
        pytest.param(per_unit("0.10", free="100"), "40", D("0"), id="free-units-cover-all"),
        pytest.param(per_unit("0.10"), "0", D("0"), id="zero-quantity"),
        # 1.00 per 3 seats x 3 seats = 1 exactly (not 0.999...)
        pytest.param(per_unit("1.00", "3"), "3", D("1"), id="per-3-whole"),
        # 0.01 per 3 units x 16.5 units = 0.165 / 3 = 0.055 exactly: it must round to 0.06
        pytest.param(per_unit("0.01", "3"), "16.5", D("0.055"), id="per-3-exact-half-cent"),
    ],
)
def test_per_unit(spec, quantity, expected):
    # given a per_unit charge, when a quantity is rated
    rated = charge_rate(spec, D(quantity))

    # then the amount is exactly the hand-computed one
    assert rated.amount == expected
    # and the quantity comes back as measured, digits and exponent untouched
    assert rated.quantity.as_tuple() == D(quantity).as_tuple()
    assert rated.billable == D(quantity) - rated.free_units


def test_per_unit_reports_the_price_of_one_unit():
    rated = charge_rate(per_unit("2.50", "1000000"), D("1234567"))

    # 2.50 / 1,000,000 = 0.0000025 per token
    assert rated.unit_price == D("0.0000025")
    assert rated.slices == ()
    assert rated.packages is None


def test_per_unit_exact_amount_keeps_every_digit():
    # given a sub-micro price over an odd token count
    spec = per_unit("0.000001234567891234")

    # when 123,456,789.123456789 tokens are rated
    rated = charge_rate(spec, D("123456789.123456789"))

    # then all 30 significant digits of the product survive:
    # 123456789.123456789 x 0.000001234567891234 = 152.415787806666675280250887626
    assert rated.amount == D("152.415787806666675280250887626")


# ---------------------------------------------------------------------------------------------
# graduated: each unit at its own tier's price; up_to is the inclusive cumulative bound

GRADUATED = tiered(
    PricingModel.GRADUATED,
    ("100", "0.10"),  # units 1..100
    ("1000", "0.05"),  # units 101..1000
    (None, "0.01"),  # units 1001..
)


@pytest.mark.parametrize(
    ("quantity", "expected", "slice_quantities"),
    [
        pytest.param("0", D("0"), (), id="zero"),
        pytest.param("1", D("0.10"), (D(1),), id="first-unit"),
        # 99 x 0.10
        pytest.param("99", D("9.90"), (D(99),), id="one-below-first-bound"),
        # 100 x 0.10: the bound is inclusive, nothing reaches tier 2
        pytest.param("100", D("10.00"), (D(100),), id="at-first-bound"),
        # 100 x 0.10 + 1 x 0.05
        pytest.param("101", D("10.05"), (D(100), D(1)), id="one-above-first-bound"),
        # 100 x 0.10 + 50.5 x 0.05 = 10 + 2.525
        pytest.param("150.5", D("12.525"), (D(100), D("50.5")), id="fractional"),
        # 10 + 899 x 0.05 = 10 + 44.95
        pytest.param("999", D("54.95"), (D(100), D(899)), id="one-below-second-bound"),
        # 10 + 900 x 0.05 = 10 + 45
        pytest.param("1000", D("55.00"), (D(100), D(900)), id="at-second-bound"),
        # 55 + 1 x 0.01
        pytest.param("1001", D("55.01"), (D(100), D(900), D(1)), id="one-above-second-bound"),
        # 55 + 1500 x 0.01
        pytest.param("2500", D("70.00"), (D(100), D(900), D(1500)), id="deep-in-last-tier"),
    ],
)
def test_graduated(quantity, expected, slice_quantities):
    rated = charge_rate(GRADUATED, D(quantity))

    assert rated.amount == expected
    assert tuple(s.quantity for s in rated.slices) == slice_quantities
    # tiers are numbered from 1 and each slice starts where the previous one ended
    assert [s.tier for s in rated.slices] == list(range(1, len(slice_quantities) + 1))
    assert [s.after for s in rated.slices] == [D(0), D(100), D(1000)][: len(slice_quantities)]


def test_graduated_slices_carry_their_tier_prices_and_amounts():
    rated = charge_rate(GRADUATED, D("1001"))

    first, second, third = rated.slices
    assert (first.up_to, first.unit_price, first.amount) == (D(100), D("0.10"), D("10.00"))
    assert (second.up_to, second.unit_price, second.amount) == (D(1000), D("0.05"), D("45.00"))
    assert (third.up_to, third.unit_price, third.amount) == (None, D("0.01"), D("0.01"))
    assert rated.unit_price is None


GRADUATED_FLAT = tiered(
    PricingModel.GRADUATED,
    ("10", "0", "5"),  # units 1..10 free of unit charge, 5 flat once any is used
    ("100", "1.00", "20"),  # units 11..100 at 1.00, plus 20 once
    (None, "0.50", "3"),  # units 101.. at 0.50, plus 3 once
)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        pytest.param("0", D("0"), id="zero-no-flat-fee"),
        # first tier's flat fee only
        pytest.param("1", D("5"), id="one-unit-first-flat-fee"),
        pytest.param("10", D("5"), id="at-first-bound"),
        # 5 + (1 x 1.00 + 20)
        pytest.param("11", D("26"), id="one-above-first-bound"),
        # 5 + (90 x 1.00 + 20)
        pytest.param("100", D("115"), id="at-second-bound"),
        # 115 + (1 x 0.50 + 3)
        pytest.param("101", D("118.5"), id="one-above-second-bound"),
        # 5 + (0.5 x 1.00 + 20): a fraction of a unit is enough to owe the flat fee
        pytest.param("10.5", D("25.5"), id="fraction-into-tier"),
    ],
)
def test_graduated_flat_fee_once_per_tier_reached(quantity, expected):
    assert charge_rate(GRADUATED_FLAT, D(quantity)).amount == expected


def test_graduated_free_units_come_off_before_the_tiers():
    # given 50 free units on the 0.10 / 0.05 / 0.01 ladder
    spec = tiered(
        PricingModel.GRADUATED, ("100", "0.10"), ("1000", "0.05"), (None, "0.01"), free="50"
    )

    # when 200 units are used
    rated = charge_rate(spec, D(200))

    # then 150 are billable: 100 x 0.10 + 50 x 0.05 = 12.50
    assert (rated.free_units, rated.billable) == (D(50), D(150))
    assert rated.amount == D("12.50")


def test_graduated_single_tier_amount_is_exact():
    # one open tier at a sub-micro price: the sum of slices must not round to 28 digits
    spec = tiered(PricingModel.GRADUATED, (None, "0.000001234567891234"))

    rated = charge_rate(spec, D("123456789.123456789"))

    # 123456789.123456789 x 0.000001234567891234, all 30 significant digits
    assert rated.amount == D("152.415787806666675280250887626")
    assert rated.amount == rated.slices[0].amount


# ---------------------------------------------------------------------------------------------
# volume: every unit at the price of the tier the total reaches, plus that tier's flat fee

VOLUME = tiered(
    PricingModel.VOLUME,
    ("100", "0.10"),
    ("1000", "0.05", "10"),
    (None, "0.01", "25"),
)


@pytest.mark.parametrize(
    ("quantity", "expected", "tier", "price"),
    [
        pytest.param("0", D("0"), None, D("0.10"), id="zero"),
        # 0.5 x 0.10
        pytest.param("0.5", D("0.05"), 1, D("0.10"), id="fractional"),
        # 99 x 0.10
        pytest.param("99", D("9.90"), 1, D("0.10"), id="one-below-first-bound"),
        # 100 x 0.10: inclusive bound, still tier 1
        pytest.param("100", D("10.00"), 1, D("0.10"), id="at-first-bound"),
        # 101 x 0.05 + 10: all units repriced, tier 2's flat fee
        pytest.param("101", D("15.05"), 2, D("0.05"), id="one-above-first-bound"),
        # 999 x 0.05 + 10 = 49.95 + 10
        pytest.param("999", D("59.95"), 2, D("0.05"), id="one-below-second-bound"),
        # 1000 x 0.05 + 10
        pytest.param("1000", D("60.00"), 2, D("0.05"), id="at-second-bound"),
        # 1001 x 0.01 + 25 = 10.01 + 25: cheaper than 1000 units, as volume pricing allows
        pytest.param("1001", D("35.01"), 3, D("0.01"), id="one-above-second-bound"),
    ],
)
def test_volume(quantity, expected, tier, price):
    rated = charge_rate(VOLUME, D(quantity))

    assert rated.amount == expected
    assert rated.unit_price == price
    if tier is None:
        assert rated.slices == ()
    else:
        (reached,) = rated.slices
        assert (reached.tier, reached.quantity, reached.amount) == (tier, D(quantity), expected)


def test_volume_zero_quantity_owes_no_flat_fee():
    spec = tiered(PricingModel.VOLUME, ("10", "1", "5"), (None, "0.5"))

    assert charge_rate(spec, D(0)).amount == D(0)
    # 1 x 1 + 5
    assert charge_rate(spec, D(1)).amount == D(6)


def test_volume_free_units_decide_the_tier_from_billable_units():
    # given 100 free units, when 1,100 are used, then 1,000 are billable: tier 2
    spec = tiered(
        PricingModel.VOLUME,
        ("100", "0.10"),
        ("1000", "0.05", "10"),
        (None, "0.01", "25"),
        free="100",
    )

    rated = charge_rate(spec, D(1100))

    # 1000 x 0.05 + 10
    assert rated.billable == D(1000)
    assert rated.amount == D("60.00")


def test_volume_free_units_cover_everything():
    spec = tiered(PricingModel.VOLUME, ("10", "1", "5"), (None, "0.5"), free="20")

    rated = charge_rate(spec, D(20))

    assert (rated.billable, rated.amount) == (D(0), D(0))


# ---------------------------------------------------------------------------------------------
# package: each started package_size costs package_price


@pytest.mark.parametrize(
    ("spec", "quantity", "packages", "expected"),
    [
        pytest.param(package("2.00", "1000"), "0", 0, D("0"), id="zero"),
        pytest.param(package("2.00", "1000"), "1", 1, D("2.00"), id="one-unit-starts-one"),
        pytest.param(package("2.00", "1000"), "999", 1, D("2.00"), id="one-below-size"),
        pytest.param(package("2.00", "1000"), "1000", 1, D("2.00"), id="exactly-one"),
        # 2 x 2.00
        pytest.param(package("2.00", "1000"), "1001", 2, D("4.00"), id="one-above-size"),
        # 3 x 2.00
        pytest.param(package("2.00", "1000"), "2500", 3, D("6.00"), id="two-and-a-half"),
        # 0.5 GB packages at 1.00: 1.2 GB starts 3 of them
        pytest.param(package("1.00", "0.5"), "1.2", 3, D("3.00"), id="fractional-size"),
        pytest.param(package("1.00", "0.5"), "1.0", 2, D("2.00"), id="fractional-exact"),
        # 500 free of 1,500: 1,000 billable, one package
        pytest.param(package("2.00", "1000", free="500"), "1500", 1, D("2.00"), id="free"),
        # 500 free of 1,501: 1,001 billable, two packages
        pytest.param(package("2.00", "1000", free="500"), "1501", 2, D("4.00"), id="free-over"),
    ],
)
def test_package(spec, quantity, packages, expected):
    rated = charge_rate(spec, D(quantity))

    assert rated.packages == packages
    assert rated.amount == expected


# ---------------------------------------------------------------------------------------------
# free units for every model


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # (250 - 100) x 0.10
        pytest.param(per_unit("0.10", free="100"), D("15"), id="per_unit"),
        # 150 billable: 100 x 0.10 + 50 x 0.05
        pytest.param(
            tiered(PricingModel.GRADUATED, ("100", "0.10"), (None, "0.05"), free="100"),
            D("12.50"),
            id="graduated",
        ),
        # 150 billable reach tier 2: 150 x 0.05
        pytest.param(
            tiered(PricingModel.VOLUME, ("100", "0.10"), (None, "0.05"), free="100"),
            D("7.50"),
            id="volume",
        ),
        # 150 billable in packages of 100: 2 x 3.00
        pytest.param(package("3.00", "100", free="100"), D("6.00"), id="package"),
    ],
)
def test_free_units_are_deducted_before_pricing_for_every_model(spec, expected):
    rated = charge_rate(spec, D(250))

    assert (rated.quantity, rated.free_units, rated.billable) == (D(250), D(100), D(150))
    assert rated.amount == expected


@pytest.mark.parametrize("quantity", [D(-1), D("-0.001"), D("NaN"), D("Infinity")])
def test_quantity_must_be_a_number_of_at_least_zero(quantity):
    with pytest.raises(ValueError, match="quantity"):
        charge_rate(per_unit("1"), quantity)


# ---------------------------------------------------------------------------------------------
# charge_spec_check


def tiers(*bounds: str | None) -> tuple[Tier, ...]:
    return tuple(Tier(None if b is None else D(b), D("0.01")) for b in bounds)


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        pytest.param(per_unit("-0.01"), "unit_price", id="negative-unit-price"),
        pytest.param(per_unit("NaN"), "unit_price", id="nan-unit-price"),
        pytest.param(package("-1", "10"), "package_price", id="negative-package-price"),
        pytest.param(per_unit("1", free="-1"), "free_units", id="negative-free-units"),
        pytest.param(per_unit("1", "0"), "package_size", id="per-unit-size-0"),
        pytest.param(per_unit("1", "-5"), "package_size", id="per-unit-size-negative"),
        pytest.param(per_unit("1", "Infinity"), "package_size", id="per-unit-size-infinite"),
        pytest.param(package("1", "0"), "package_size", id="package-size-0"),
        pytest.param(package("1", "-5"), "package_size", id="package-size-negative"),
        pytest.param(ChargeSpec(PricingModel.GRADUATED), "tiers", id="graduated-no-tiers"),
        pytest.param(ChargeSpec(PricingModel.VOLUME), "tiers", id="volume-no-tiers"),
        pytest.param(
            ChargeSpec(PricingModel.GRADUATED, tiers=tiers("100", "100", None)),
            "tiers[1].up_to",
            id="equal-bounds",
        ),
        pytest.param(
            ChargeSpec(PricingModel.VOLUME, tiers=tiers("100", "50", None)),
            "tiers[1].up_to",
            id="decreasing-bounds",
        ),
        pytest.param(
            ChargeSpec(PricingModel.GRADUATED, tiers=tiers("10", "20", "15", None)),
            "tiers[2].up_to",
            id="decreasing-third-bound",
        ),
        pytest.param(
            ChargeSpec(PricingModel.GRADUATED, tiers=tiers("0", None)),
            "tiers[0].up_to",
            id="first-bound-zero",
        ),
        pytest.param(
            ChargeSpec(PricingModel.GRADUATED, tiers=tiers("-10", None)),
            "tiers[0].up_to",
            id="first-bound-negative",
        ),
        pytest.param(
            ChargeSpec(PricingModel.GRADUATED, tiers=tiers("NaN", None)),
            "tiers[0].up_to",
            id="bound-nan",
        ),
        pytest.param(
            ChargeSpec(PricingModel.GRADUATED, tiers=tiers(None, None)),
            "tiers[0].up_to",
            id="unbounded-tier-not-last",
        ),
        pytest.param(
            ChargeSpec(PricingModel.VOLUME, tiers=tiers("100", None, "200")),
            "tiers[1].up_to",
            id="unbounded-middle-tier",
        ),
        pytest.param(
            ChargeSpec(PricingModel.GRADUATED, tiers=tiers("100")),
            "tiers[0].up_to",
            id="only-tier-bounded",
        ),
        pytest.param(
            ChargeSpec(PricingModel.VOLUME, tiers=tiers("100", "200")),
            "tiers[1].up_to",
            id="last-tier-bounded",
        ),
        pytest.param(
            tiered(PricingModel.GRADUATED, ("100", "0.10"), (None, "-0.01")),
            "tiers[1].unit_price",
            id="negative-tier-price",
        ),
        pytest.param(
            tiered(PricingModel.VOLUME, ("100", "0.10", "-5"), (None, "0.01")),
            "tiers[0].flat_fee",
            id="negative-flat-fee",
        ),
    ],
)
def test_charge_spec_check_names_the_bad_field(spec, path):
    with pytest.raises(ChargeSpecInvalid) as caught:
        charge_spec_check(spec)

    assert caught.value.path == path
    # the message leads with the path so an API error can be read on its own
    assert str(caught.value).startswith(f"{path}: ")
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(per_unit("0"), id="free-per-unit"),
        pytest.param(per_unit("2.50", "1000000", free="1000"), id="per-million"),
        pytest.param(package("2.00", "0.5"), id="fractional-package"),
        pytest.param(ChargeSpec(PricingModel.GRADUATED, tiers=tiers(None)), id="one-open-tier"),
        pytest.param(
            tiered(PricingModel.VOLUME, ("0.5", "1", "2"), ("10", "0.5"), (None, "0")),
            id="fractional-bounds",
        ),
        # fields a model does not use are ignored
        pytest.param(
            ChargeSpec(PricingModel.GRADUATED, package_size=D(0), tiers=tiers("1", None)),
            id="graduated-ignores-package-size",
        ),
        pytest.param(
            ChargeSpec(PricingModel.PER_UNIT, unit_price=D(1), tiers=tiers("1")),
            id="per-unit-ignores-tiers",
        ),
    ],
)
def test_charge_spec_check_accepts_valid_specs(spec):
    assert charge_spec_check(spec) is None
