"""Pricing one invoice: base fee and proration, trial, minimum commitment, adjustments, extra
lines, credits, tax, and rounding to each currency's minor unit (JPY 0, USD 2, KWD 3 places).

Expected amounts are worked out by hand; each rounding is half up (0.125 -> 0.13).
"""

from decimal import Decimal

import pytest

from apps.rating.charges import ChargeSpec, PricingModel, Tier
from apps.rating.invoices import (
    AdjustmentInput,
    ExtraLine,
    InvoiceInput,
    LineKind,
    Share,
    UsageInput,
    invoice_price,
)

D = Decimal


def per_unit(price: str, size: str = "1") -> ChargeSpec:
    return ChargeSpec(PricingModel.PER_UNIT, unit_price=D(price), package_size=D(size))


def usage(key: str, charge: ChargeSpec, quantity: str, **kwargs) -> UsageInput:
    return UsageInput(key, f"{key} usage", f"meter_{key}", charge, D(quantity), **kwargs)


def adjustment(key: str, amount: str, quantity: str = "0") -> AdjustmentInput:
    return AdjustmentInput(key, f"{key} correction", f"meter_{key}", D(quantity), D(amount))


def kinds(invoice) -> list[LineKind]:
    return [line.kind for line in invoice.lines]


def line_of(invoice, kind: LineKind):
    (found,) = [line for line in invoice.lines if line.kind == kind]
    return found


# ---------------------------------------------------------------------------------------------
# base fee, proration, trial


def test_base_fee_for_a_whole_period():
    invoice = invoice_price(InvoiceInput(currency="USD", base_fee=D("99.00"), plan_name="Pro"))

    (line,) = invoice.lines
    assert (line.kind, line.key, line.description) == (
        LineKind.BASE_FEE,
        "base_fee",
        "Pro base fee",
    )
    assert line.amount == D("99.00")
    assert (invoice.subtotal, invoice.tax, invoice.total) == (D("99.00"), D("0.00"), D("99.00"))


@pytest.mark.parametrize(
    ("currency", "fee", "days", "of_days", "expected"),
    [
        # 99.00 x 17 / 30 = 56.1
        pytest.param("USD", "99.00", 17, 30, "56.10", id="usd-17-of-30"),
        # 100.00 x 1 / 3 = 33.333...
        pytest.param("USD", "100.00", 1, 3, "33.33", id="usd-1-of-3-rounds-down"),
        # 100.00 x 2 / 3 = 66.666...
        pytest.param("USD", "100.00", 2, 3, "66.67", id="usd-2-of-3-rounds-up"),
        # 0.25 x 1 / 2 = 0.125: half up
        pytest.param("USD", "0.25", 1, 2, "0.13", id="usd-half-cent-up"),
        # 1000 x 1 / 3 = 333.33...
        pytest.param("JPY", "1000", 1, 3, "333", id="jpy-1-of-3"),
        # 5 x 1 / 2 = 2.5: half up
        pytest.param("JPY", "5", 1, 2, "3", id="jpy-half-yen-up"),
        # 10.000 x 1 / 3 = 3.3333...
        pytest.param("KWD", "10.000", 1, 3, "3.333", id="kwd-1-of-3"),
        # 0.001 x 1 / 2 = 0.0005: half up
        pytest.param("KWD", "0.001", 1, 2, "0.001", id="kwd-half-fils-up"),
    ],
)
def test_base_fee_is_prorated_then_rounded_once(currency, fee, days, of_days, expected):
    # given a subscription active for days of of_days
    spec = InvoiceInput(currency=currency, base_fee=D(fee), share=Share(days, of_days))

    # when the invoice is priced
    invoice = invoice_price(spec)

    # then the base fee is the prorated fee, rounded half up to the minor unit (same exponent)
    (line,) = invoice.lines
    assert str(line.amount) == expected
    assert line.description == f"base fee ({days} of {of_days} days)"


def test_prorated_base_fee_keeps_its_exact_amount():
    invoice = invoice_price(InvoiceInput(currency="USD", base_fee=D("100.00"), share=Share(1, 3)))

    (line,) = invoice.lines
    # 100 / 3, not yet rounded: 33.333... to (far) more than the 2 places of the line
    assert line.exact_amount.quantize(D("1E-25")) == D("33." + "3" * 25)
    assert line.amount == D("33.33")


def test_trial_waives_the_base_fee_but_not_usage():
    spec = InvoiceInput(
        currency="USD",
        base_fee=D("99.00"),
        trial=True,
        usage=(usage("api", per_unit("0.01"), "250"),),
    )

    invoice = invoice_price(spec)

    # 250 x 0.01 = 2.50, and no base fee line at all
    assert kinds(invoice) == [LineKind.USAGE]
    assert invoice.total == D("2.50")


def test_no_base_fee_line_without_a_base_fee():
    invoice = invoice_price(InvoiceInput(currency="USD", usage=(usage("api", per_unit("1"), "1"),)))

    assert kinds(invoice) == [LineKind.USAGE]


def test_base_fee_prorated_to_nothing_is_dropped():
    # given a subscription active 0 of 30 days, then no "(0 of 30 days)" fee line of 0.00
    invoice = invoice_price(InvoiceInput(currency="USD", base_fee=D("99.00"), share=Share(0, 30)))

    assert invoice.lines == ()
    assert invoice.total == D(0)


def test_base_fee_share_prorates_the_fee_but_not_the_commitment():
    # given a whole period of which the last 20 of 30 days were a free trial
    spec = InvoiceInput(
        currency="USD",
        base_fee=D("99.00"),
        minimum_commitment=D("30.00"),
        share=Share(30, 30),
        base_fee_share=Share(10, 30),
    )

    invoice = invoice_price(spec)

    base, minimum = invoice.lines
    # 99.00 x 10 / 30 = 33.00, while the commitment stays whole: 30.00 - 0 usage
    assert (base.amount, base.description) == (D("33.00"), "base fee (10 of 30 days)")
    assert minimum.amount == D("30.00")


@pytest.mark.parametrize(("days", "of_days"), [(31, 30), (-1, 30), (0, 0), (1, 0)])
def test_share_must_be_within_the_period(days, of_days):
    with pytest.raises(ValueError, match="share"):
        Share(days, of_days)


# ---------------------------------------------------------------------------------------------
# usage lines


def test_usage_line_carries_what_was_measured_and_how_it_was_priced():
    # given 1,234,567 tokens at 0.15 per 1,000,000 tokens, filtered to one model
    spec = InvoiceInput(
        currency="USD",
        usage=(
            usage(
                "tokens",
                per_unit("0.15", "1000000"),
                "1234567",
                dimensions=(("model", "small"),),
            ),
        ),
    )

    invoice = invoice_price(spec)

    # then 1,234,567 x 0.15 / 1,000,000 = 0.18518505 exact, 0.19 on the line
    (line,) = invoice.lines
    assert (line.kind, line.key, line.meter) == (LineKind.USAGE, "tokens", "meter_tokens")
    assert line.exact_amount == D("0.18518505")
    assert line.amount == D("0.19")
    assert line.quantity == D("1234567")
    # 0.15 / 1,000,000 per token
    assert line.unit_price == D("0.00000015")
    assert line.dimensions == (("model", "small"),)
    assert line.rated is not None
    assert line.rated.amount == line.exact_amount


def test_tiny_price_over_a_million_events_is_two_dollars():
    # 0.000002 x 1,000,000 = 2
    spec = InvoiceInput(currency="USD", usage=(usage("events", per_unit("0.000002"), "1000000"),))

    invoice = invoice_price(spec)

    assert str(invoice.lines[0].amount) == "2.00"
    assert invoice.total == D("2.00")


def test_graduated_usage_line_lists_its_tiers():
    charge = ChargeSpec(
        PricingModel.GRADUATED, tiers=(Tier(D(100), D("0.10")), Tier(None, D("0.05")))
    )
    invoice = invoice_price(InvoiceInput(currency="USD", usage=(usage("api", charge, "150"),)))

    (line,) = invoice.lines
    # 100 x 0.10 + 50 x 0.05 = 10 + 2.5
    assert line.amount == D("12.50")
    assert [(t.tier, t.quantity, t.amount) for t in line.tiers] == [
        (1, D(100), D("10.00")),
        (2, D(50), D("2.50")),
    ]
    assert line.unit_price is None


@pytest.mark.parametrize("currency", ["JPY", "USD", "KWD"])
def test_usage_with_quantity_zero_is_kept_at_zero(currency):
    # given a meter that read 0
    spec = InvoiceInput(currency=currency, usage=(usage("api", per_unit("0.01"), "0"),))

    invoice = invoice_price(spec)

    # then the line is still there, so the partner sees the meter read 0
    (line,) = invoice.lines
    assert (line.kind, line.quantity, line.amount) == (LineKind.USAGE, D(0), D(0))
    assert line.amount.as_tuple().exponent == -{"JPY": 0, "USD": 2, "KWD": 3}[currency]


# ---------------------------------------------------------------------------------------------
# rounding per currency


@pytest.mark.parametrize(
    ("currency", "price", "expected", "exponent"),
    [
        # exactly half a minor unit rounds up, not to even
        pytest.param("USD", "0.125", "0.13", -2, id="usd-half-up"),
        pytest.param("USD", "0.135", "0.14", -2, id="usd-half-up-odd"),
        pytest.param("USD", "0.124999", "0.12", -2, id="usd-below-half"),
        pytest.param("USD", "7", "7.00", -2, id="usd-whole-gets-cents"),
        pytest.param("JPY", "2.5", "3", 0, id="jpy-half-up"),
        pytest.param("JPY", "3.5", "4", 0, id="jpy-half-up-odd"),
        pytest.param("JPY", "2.4999", "2", 0, id="jpy-below-half"),
        pytest.param("JPY", "7.00", "7", 0, id="jpy-no-decimals"),
        pytest.param("KWD", "0.0005", "0.001", -3, id="kwd-half-up"),
        pytest.param("KWD", "0.0025", "0.003", -3, id="kwd-half-up-even"),
        pytest.param("KWD", "0.00049", "0.000", -3, id="kwd-below-half"),
        pytest.param("KWD", "7", "7.000", -3, id="kwd-whole-gets-fils"),
    ],
)
def test_lines_round_half_up_to_the_currency_minor_unit(currency, price, expected, exponent):
    # given one unit at price
    spec = InvoiceInput(currency=currency, usage=(usage("api", per_unit(price), "1"),))

    # when priced
    invoice = invoice_price(spec)

    # then the line has exactly the currency's decimal places, rounded half up
    (line,) = invoice.lines
    assert str(line.amount) == expected
    assert line.amount.as_tuple().exponent == exponent
    assert line.exact_amount == D(price)
    assert invoice.tax.as_tuple().exponent == exponent
    assert invoice.total.as_tuple().exponent == exponent


def test_each_line_is_rounded_before_the_subtotal():
    # given three lines of 0.005 each (exact sum 0.015)
    spec = InvoiceInput(
        currency="USD",
        usage=tuple(usage(f"m{n}", per_unit("0.005"), "1") for n in range(3)),
    )

    invoice = invoice_price(spec)

    # then each line rounds to 0.01 and the subtotal is 3 x 0.01, not round(0.015) = 0.02
    assert [line.amount for line in invoice.lines] == [D("0.01")] * 3
    assert invoice.subtotal == D("0.03")


# ---------------------------------------------------------------------------------------------
# minimum commitment


@pytest.mark.parametrize(
    ("quantity", "expected_minimum"),
    [
        # usage 40 x 1.00 = 40.00 short of 100.00 by 60.00
        pytest.param("40", D("60.00"), id="short"),
        # 99.99 short by 0.01
        pytest.param("99.99", D("0.01"), id="short-by-a-cent"),
        pytest.param("100", None, id="exactly-met"),
        pytest.param("150", None, id="exceeded"),
        # 0 usage: the whole commitment
        pytest.param("0", D("100.00"), id="no-usage"),
    ],
)
def test_minimum_commitment_true_up(quantity, expected_minimum):
    spec = InvoiceInput(
        currency="USD",
        minimum_commitment=D("100.00"),
        usage=(usage("api", per_unit("1.00"), quantity),),
    )

    invoice = invoice_price(spec)

    minimums = [line for line in invoice.lines if line.kind == LineKind.MINIMUM]
    if expected_minimum is None:
        assert minimums == []
        assert invoice.subtotal == D(quantity)
    else:
        (line,) = minimums
        assert (line.key, line.amount, line.exact_amount) == (
            "minimum",
            expected_minimum,
            expected_minimum,
        )
        # usage plus true-up is the commitment
        assert invoice.subtotal == D("100.00")


def test_minimum_compares_rounded_usage_lines():
    # given usage of 9.995 exact, which the line rounds (half up) to 10.00
    spec = InvoiceInput(
        currency="USD",
        minimum_commitment=D("10.00"),
        usage=(usage("api", per_unit("0.001"), "9995"),),
    )

    invoice = invoice_price(spec)

    # then the commitment is met: no 0.005 -> 0.01 true-up
    assert kinds(invoice) == [LineKind.USAGE]
    assert invoice.total == D("10.00")


def test_minimum_adds_up_rounded_lines_not_exact_amounts():
    # given two usage lines of 0.004 each: rounded 0.00 + 0.00, though 0.008 exact would be 0.01
    spec = InvoiceInput(
        currency="USD",
        minimum_commitment=D("0.01"),
        usage=(usage("a", per_unit("0.004"), "1"), usage("b", per_unit("0.004"), "1")),
    )

    invoice = invoice_price(spec)

    # then the shortfall is the whole 0.01
    assert line_of(invoice, LineKind.MINIMUM).amount == D("0.01")
    assert invoice.total == D("0.01")


def test_minimum_just_under_after_rounding():
    # given 9.994 exact usage, rounded to 9.99, then a 0.01 true-up
    spec = InvoiceInput(
        currency="USD",
        minimum_commitment=D("10.00"),
        usage=(usage("api", per_unit("0.001"), "9994"),),
    )

    invoice = invoice_price(spec)

    assert line_of(invoice, LineKind.MINIMUM).amount == D("0.01")
    assert invoice.subtotal == D("10.00")


def test_minimum_commitment_is_prorated_and_rounded():
    # given 100.00 committed, active 1 of 3 days: 33.333... -> 33.33
    spec = InvoiceInput(
        currency="USD",
        minimum_commitment=D("100.00"),
        share=Share(1, 3),
        usage=(usage("api", per_unit("1.00"), "30"),),
    )

    invoice = invoice_price(spec)

    # then the true-up is 33.33 - 30.00
    line = line_of(invoice, LineKind.MINIMUM)
    assert line.amount == D("3.33")
    assert "33.33" in line.description
    assert invoice.subtotal == D("33.33")


def test_minimum_applies_during_a_trial():
    # a trial waives the base fee only
    spec = InvoiceInput(currency="USD", base_fee=D("50"), minimum_commitment=D("20"), trial=True)

    invoice = invoice_price(spec)

    assert kinds(invoice) == [LineKind.MINIMUM]
    assert invoice.total == D("20.00")


def test_no_minimum_line_without_a_commitment():
    invoice = invoice_price(InvoiceInput(currency="USD", usage=(usage("api", per_unit("1"), "0"),)))

    assert kinds(invoice) == [LineKind.USAGE]


# ---------------------------------------------------------------------------------------------
# adjustments and extra lines


def test_adjustments_are_rounded_lines_of_their_own():
    # given a refund of 5.125 and a back-charge of 1.004
    spec = InvoiceInput(
        currency="USD",
        base_fee=D("20.00"),
        adjustments=(adjustment("refund", "-5.125", "-5125"), adjustment("late", "1.004", "4")),
    )

    invoice = invoice_price(spec)

    refund, late = invoice.lines[1:]
    # -5.125 rounds half away from zero to -5.13; 1.004 to 1.00
    assert (refund.kind, refund.amount, refund.exact_amount) == (
        LineKind.ADJUSTMENT,
        D("-5.13"),
        D("-5.125"),
    )
    assert (refund.meter, refund.quantity) == ("meter_refund", D(-5125))
    assert late.amount == D("1.00")
    # 20.00 - 5.13 + 1.00
    assert invoice.subtotal == D("15.87")


def test_extra_line_is_quantity_times_price_rounded_once():
    # given 3 credit packs at 12.345
    extra = ExtraLine(LineKind.CREDIT_PACK, "pack", "Credit pack", D(3), D("12.345"))

    invoice = invoice_price(InvoiceInput(currency="USD", extra_lines=(extra,)))

    # then 3 x 12.345 = 37.035 -> 37.04
    (line,) = invoice.lines
    assert (line.kind, line.exact_amount, line.amount) == (
        LineKind.CREDIT_PACK,
        D("37.035"),
        D("37.04"),
    )
    assert (line.quantity, line.unit_price) == (D(3), D("12.345"))


def test_lines_come_in_a_stable_order():
    spec = InvoiceInput(
        currency="USD",
        base_fee=D("10"),
        minimum_commitment=D("100"),
        usage=(usage("a", per_unit("1"), "1"), usage("b", per_unit("1"), "2")),
        adjustments=(adjustment("fix", "1"),),
        extra_lines=(ExtraLine(LineKind.CREDIT_PACK, "pack", "Pack", D(1), D(5)),),
    )

    invoice = invoice_price(spec)

    assert [line.key for line in invoice.lines] == ["base_fee", "a", "b", "minimum", "fix", "pack"]
    # the base fee does not count towards the commitment: 100 - (1 + 2) = 97
    assert line_of(invoice, LineKind.MINIMUM).amount == D("97.00")


# ---------------------------------------------------------------------------------------------
# credits, tax, total


@pytest.mark.parametrize(
    ("credits", "applied"),
    [
        pytest.param("0", D("0"), id="none"),
        pytest.param("30.00", D("30.00"), id="part"),
        pytest.param("100.00", D("100.00"), id="all"),
        # never more than the subtotal
        pytest.param("150.00", D("100.00"), id="more-than-subtotal"),
        # never below 0
        pytest.param("-5.00", D("0"), id="negative-available"),
    ],
)
def test_credits_applied_are_capped_by_the_subtotal(credits, applied):
    spec = InvoiceInput(currency="USD", base_fee=D("100.00"), credits_available=D(credits))

    invoice = invoice_price(spec)

    assert invoice.credits_applied == applied
    # 100.00 - applied, no tax
    assert invoice.total == D("100.00") - applied


def test_no_credits_applied_to_a_negative_subtotal():
    # given only a refund
    spec = InvoiceInput(
        currency="USD", adjustments=(adjustment("refund", "-20.00"),), credits_available=D(10)
    )

    invoice = invoice_price(spec)

    assert invoice.subtotal == D("-20.00")
    assert invoice.credits_applied == D(0)
    assert invoice.total == D("-20.00")


@pytest.mark.parametrize(
    ("currency", "fee", "credits", "rate", "tax", "total"),
    [
        # (100.00 - 30.00) x 0.2 = 14.00; 100 - 30 + 14
        pytest.param("USD", "100.00", "30.00", "0.2", "14.00", "84.00", id="usd-after-credits"),
        # 10.25 x 0.1 = 1.025 -> 1.03 (half up, not to even)
        pytest.param("USD", "10.25", "0", "0.1", "1.03", "11.28", id="usd-half-up"),
        # 10.24 x 0.1 = 1.024 -> 1.02
        pytest.param("USD", "10.24", "0", "0.1", "1.02", "11.26", id="usd-down"),
        # 25 x 0.1 = 2.5 -> 3
        pytest.param("JPY", "25", "0", "0.1", "3", "28", id="jpy-half-up"),
        # (1000 - 1000) x 0.1 = 0
        pytest.param("JPY", "1000", "1000", "0.1", "0", "0", id="jpy-all-credited"),
        # 1.005 x 0.1 = 0.1005 -> 0.101
        pytest.param("KWD", "1.005", "0", "0.1", "0.101", "1.106", id="kwd-half-up"),
        # (12.500 - 2.500) x 0.075 = 0.75
        pytest.param("KWD", "12.500", "2.500", "0.075", "0.750", "10.750", id="kwd-credits"),
    ],
)
def test_tax_is_on_what_credits_leave(currency, fee, credits, rate, tax, total):
    spec = InvoiceInput(
        currency=currency, base_fee=D(fee), credits_available=D(credits), tax_rate=D(rate)
    )

    invoice = invoice_price(spec)

    assert str(invoice.tax) == tax
    assert str(invoice.total) == total
    # total = subtotal - credits applied + tax
    assert invoice.total == invoice.subtotal - invoice.credits_applied + invoice.tax


def test_whole_invoice_by_hand():
    # given a Pro plan for 17 of 30 days with tokens, a tiered API meter, a minimum, credits, tax
    api = ChargeSpec(
        PricingModel.GRADUATED,
        tiers=(Tier(D(1000), D(0)), Tier(None, D("0.002"), D("1.00"))),
    )
    spec = InvoiceInput(
        currency="USD",
        plan_name="Pro",
        base_fee=D("99.00"),
        minimum_commitment=D("30.00"),
        share=Share(17, 30),
        usage=(
            usage("tokens", per_unit("2.50", "1000000"), "1234567"),
            usage("api", api, "5000"),
        ),
        credits_available=D("10.00"),
        tax_rate=D("0.2"),
    )

    invoice = invoice_price(spec)

    base, tokens, calls, minimum = invoice.lines
    # 99.00 x 17 / 30 = 56.10
    assert base.amount == D("56.10")
    # 1,234,567 x 2.50 / 1,000,000 = 3.0864175 -> 3.09
    assert tokens.amount == D("3.09")
    # 1000 free, then 4000 x 0.002 + 1.00 = 9.00
    assert calls.amount == D("9.00")
    # commitment 30.00 x 17 / 30 = 17.00; usage 3.09 + 9.00 = 12.09; true-up 4.91
    assert minimum.amount == D("4.91")
    # 56.10 + 3.09 + 9.00 + 4.91
    assert invoice.subtotal == D("73.10")
    assert invoice.credits_applied == D("10.00")
    # (73.10 - 10.00) x 0.2 = 12.62
    assert invoice.tax == D("12.62")
    # 73.10 - 10.00 + 12.62
    assert invoice.total == D("75.72")
