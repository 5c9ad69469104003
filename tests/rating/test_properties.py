"""Properties of rating over random valid specs and quantities.

The oracles here use a 120-digit context, so for the bounded inputs drawn below they are exact;
they are written out from the pricing rules, never by calling the code under test.
"""

from decimal import ROUND_HALF_UP, Context, Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from apps.rating.charges import (
    ChargeSpec,
    PricingModel,
    RatedCharge,
    Tier,
    charge_rate,
    charge_spec_check,
)
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
WIDE = Context(prec=120)  # exact for every product and sum of the bounded inputs below
PLACES = {"JPY": 0, "USD": 2, "KWD": 3}  # ISO 4217 minor units
BOUNDED = settings(max_examples=200, deadline=None)


def decimals(low: str | int, high: str | int, places: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(
        min_value=D(low), max_value=D(high), places=places, allow_nan=False, allow_infinity=False
    )


def long_decimals(digits: int, places: int) -> st.SearchStrategy[Decimal]:
    """Decimals using all ``digits`` significant digits: st.decimals favours short values, and
    only long ones show whether anything rounds to fewer digits than the product has."""
    return st.integers(10 ** (digits - 1), 10**digits - 1).map(lambda n: D(n).scaleb(-places))


def half_up(amount: Decimal, places: int) -> Decimal:
    return amount.quantize(D(1).scaleb(-places), rounding=ROUND_HALF_UP)


def wide_sum(values) -> Decimal:
    total = D(0)
    for value in values:
        total = WIDE.add(total, value)
    return total


quantities = decimals(0, 10_000_000, 3)  # e.g. GB to the MB, tokens, calls
prices = decimals(0, 100, 6)
# sub-micro prices per event, up to 15 significant digits (0.000999... at most)
tiny_prices = st.one_of(decimals(0, "0.001", 18), long_decimals(15, 18))
fees = decimals(0, 1000, 2)
free = decimals(0, 1000, 2)
# Sizes whose inverse terminates (2^a x 5^b), so price / size is exact and batch sums can be
# compared digit for digit.
EXACT_SIZES = (D(1), D(2), D(4), D("0.5"), D(5), D(8), D(10), D(25), D(10**6))
exact_sizes = st.sampled_from(EXACT_SIZES)
any_sizes = decimals("0.001", 1_000_000, 3).filter(lambda size: size > 0)


@st.composite
def ladders(draw, price=prices) -> tuple[Tier, ...]:
    """1..5 tiers with strictly increasing inclusive bounds, the last one open."""
    steps = draw(st.lists(decimals("0.01", 100_000, 2), max_size=4))
    bounds: list[Decimal | None] = []
    bound = D(0)
    for step in steps:
        bound = WIDE.add(bound, step)
        bounds.append(bound)
    bounds.append(None)
    return tuple(Tier(b, draw(price), draw(fees)) for b in bounds)


def per_unit_specs(sizes=exact_sizes, price=prices):
    return st.builds(
        ChargeSpec,
        model=st.just(PricingModel.PER_UNIT),
        unit_price=price,
        package_size=sizes,
        free_units=free,
    )


def package_specs():
    return st.builds(
        ChargeSpec,
        model=st.just(PricingModel.PACKAGE),
        package_price=fees,
        package_size=any_sizes,
        free_units=free,
    )


def tiered_specs(model: PricingModel, price=prices):
    return st.builds(ChargeSpec, model=st.just(model), tiers=ladders(price), free_units=free)


any_specs = st.one_of(
    per_unit_specs(any_sizes),
    package_specs(),
    tiered_specs(PricingModel.GRADUATED),
    tiered_specs(PricingModel.VOLUME),
)
monotone_specs = st.one_of(
    per_unit_specs(any_sizes), package_specs(), tiered_specs(PricingModel.GRADUATED)
)


def billable_of(spec: ChargeSpec, quantity: Decimal) -> Decimal:
    return max(D(0), quantity - spec.free_units)


def graduated_oracle(tiers: tuple[Tier, ...], billable: Decimal) -> Decimal:
    """Each tier prices the units in (after, up_to], plus its flat fee if it priced any."""
    total, after = D(0), D(0)
    for tier in tiers:
        top = billable if tier.up_to is None else min(billable, tier.up_to)
        units = max(D(0), top - after)
        if units > 0:
            total = WIDE.add(total, WIDE.add(WIDE.multiply(units, tier.unit_price), tier.flat_fee))
        if tier.up_to is None:
            break
        after = tier.up_to
    return total


def exact_amount_oracle(spec: ChargeSpec, quantity: Decimal) -> Decimal:
    """Per_unit and graduated amounts, exact (sizes terminate)."""
    billable = billable_of(spec, quantity)
    if spec.model is PricingModel.PER_UNIT:
        return WIDE.divide(WIDE.multiply(billable, spec.unit_price), spec.package_size)
    return graduated_oracle(spec.tiers, billable)


# ---------------------------------------------------------------------------------------------
# charges


@BOUNDED
@given(spec=any_specs, quantity=quantities)
def test_generated_specs_are_valid_and_price_to_a_non_negative_amount(spec, quantity):
    charge_spec_check(spec)

    rated = charge_rate(spec, quantity)

    assert rated.amount >= 0
    assert rated.free_units == min(spec.free_units, quantity)
    assert rated.billable == billable_of(spec, quantity)
    assert rated.quantity == quantity


@BOUNDED
@given(spec=monotone_specs, quantity=quantities, more=quantities)
def test_price_never_decreases_as_quantity_grows(spec, quantity, more):
    # given two quantities, the second at least the first
    larger = WIDE.add(quantity, more)

    # when both are rated, then the larger never costs less (per_unit, graduated, package)
    assert charge_rate(spec, quantity).amount <= charge_rate(spec, larger).amount


@BOUNDED
@given(spec=tiered_specs(PricingModel.VOLUME), quantity=quantities)
def test_volume_is_billable_times_reached_tier_price_plus_its_flat_fee(spec, quantity):
    # Volume may get cheaper past a bound (a cheaper tier reprices every unit): no monotonicity.
    billable = billable_of(spec, quantity)
    reached = next(t for t in spec.tiers if t.up_to is None or billable <= t.up_to)

    rated = charge_rate(spec, quantity)

    if billable == 0:
        assert rated.amount == 0
    else:
        assert rated.amount == WIDE.add(
            WIDE.multiply(billable, reached.unit_price), reached.flat_fee
        )
        assert rated.unit_price == reached.unit_price


@BOUNDED
@given(spec=tiered_specs(PricingModel.GRADUATED), quantity=quantities)
def test_graduated_is_the_sum_of_its_tier_slices(spec, quantity):
    rated = charge_rate(spec, quantity)
    slices = rated.slices

    # the slices' quantities add up to the billable quantity, and their amounts to the amount
    assert wide_sum(s.quantity for s in slices) == rated.billable
    assert rated.amount == wide_sum(s.amount for s in slices)
    assert rated.amount == graduated_oracle(spec.tiers, rated.billable)
    # each slice is units in (after, up_to], priced at its tier, with the flat fee once
    expected_after = D(0)
    for number, piece in enumerate(slices, start=1):
        tier = spec.tiers[number - 1]
        assert piece.tier == number
        assert piece.after == expected_after
        assert piece.quantity > 0
        assert tier.up_to is None or piece.after + piece.quantity <= tier.up_to
        assert piece.amount == WIDE.add(
            WIDE.multiply(piece.quantity, tier.unit_price), tier.flat_fee
        )
        expected_after = tier.up_to


@BOUNDED
@given(
    spec=st.one_of(
        per_unit_specs(price=tiny_prices), tiered_specs(PricingModel.GRADUATED, tiny_prices)
    ),
    quantity=st.one_of(decimals(0, 1_000_000_000, 6), long_decimals(15, 6)),
)
# a 30-digit amount: more than the default context's 28 digits
@example(
    spec=ChargeSpec(PricingModel.GRADUATED, tiers=(Tier(None, D("0.000001234567891234")),)),
    quantity=D("123456789.123456789"),
)
def test_exact_amounts_keep_every_digit_of_tiny_prices(spec, quantity):
    # sub-micro prices over up to a billion units: nothing is rounded before the invoice line
    rated = charge_rate(spec, quantity)

    assert rated.amount == exact_amount_oracle(spec, quantity)


batches = st.lists(quantities, min_size=1, max_size=10)


@BOUNDED
@given(spec=any_specs, parts=batches, data=st.data())
def test_splitting_usage_into_batches_never_changes_the_total(spec, parts, data):
    # given usage measured in batches, added up in any order
    total = wide_sum(parts)
    shuffled = data.draw(st.permutations(parts))

    # when the added-up quantity is rated
    once = charge_rate(spec, sum(shuffled, D(0)))

    # then it is the same as rating the total: quantities add (exactly) before pricing
    assert once == charge_rate(spec, total)


@BOUNDED
@given(spec=per_unit_specs(), parts=batches)
def test_per_unit_batches_priced_apart_add_up_to_the_total(spec, parts):
    # no free units here: they are deducted once per charge, not once per batch
    spec = ChargeSpec(spec.model, unit_price=spec.unit_price, package_size=spec.package_size)

    apart = wide_sum(charge_rate(spec, part).amount for part in parts)

    assert apart == charge_rate(spec, wide_sum(parts)).amount


@BOUNDED
@given(spec=package_specs(), parts=batches)
def test_package_batches_priced_apart_never_cost_less(spec, parts):
    # each batch would start its own package: why quantities add before pricing
    spec = ChargeSpec(spec.model, package_price=spec.package_price, package_size=spec.package_size)

    apart = wide_sum(charge_rate(spec, part).amount for part in parts)

    assert apart >= charge_rate(spec, wide_sum(parts)).amount


# ---------------------------------------------------------------------------------------------
# invoices: rounding happens in exactly one place


@st.composite
def shares(draw) -> Share:
    of_days = draw(st.integers(1, 31))
    return Share(draw(st.integers(0, of_days)), of_days)


usage_inputs = st.builds(
    UsageInput,
    key=st.sampled_from(["tokens", "calls", "storage"]),
    description=st.just("usage"),
    meter=st.just("meter"),
    charge=st.one_of(any_specs, per_unit_specs(price=tiny_prices)),
    quantity=decimals(0, 1_000_000, 3),
)
adjustment_inputs = st.builds(
    AdjustmentInput,
    key=st.just("adj"),
    description=st.just("correction"),
    meter=st.just("meter"),
    quantity=decimals(-1000, 1000, 3),
    amount=decimals(-1000, 1000, 6),
)
extra_lines = st.builds(
    ExtraLine,
    kind=st.just(LineKind.CREDIT_PACK),
    key=st.just("pack"),
    description=st.just("Credit pack"),
    quantity=decimals(0, 100, 0),
    unit_price=decimals(0, 1000, 4),
)


@st.composite
def invoice_inputs(draw) -> InvoiceInput:
    currency = draw(st.sampled_from(sorted(PLACES)))
    places = PLACES[currency]
    return InvoiceInput(
        currency=currency,
        base_fee=draw(decimals(0, 10_000, places)),
        minimum_commitment=draw(decimals(0, 10_000, places)),
        share=draw(shares()),
        trial=draw(st.booleans()),
        usage=tuple(draw(st.lists(usage_inputs, max_size=4))),
        adjustments=tuple(draw(st.lists(adjustment_inputs, max_size=2))),
        extra_lines=tuple(draw(st.lists(extra_lines, max_size=2))),
        credits_available=draw(decimals(0, 20_000, places)),
        tax_rate=draw(decimals(0, "0.3", 4)),
    )


def assert_exact_amount_is_unrounded(line, spec: InvoiceInput) -> None:
    if line.kind is LineKind.BASE_FEE:
        # fee x days / of_days, to 40 significant digits, far below the minor unit
        wanted = WIDE.multiply(spec.base_fee, D(spec.share.days))
        assert abs(WIDE.multiply(line.exact_amount, D(spec.share.of_days)) - wanted) < D("1e-30")
    elif line.kind is LineKind.ADJUSTMENT:
        assert any(line.exact_amount == a.amount for a in spec.adjustments)
    elif line.kind is LineKind.CREDIT_PACK:
        assert line.exact_amount == WIDE.multiply(line.quantity, line.unit_price)


def assert_usage_exact_amounts_are_unrounded(invoice, spec: InvoiceInput) -> None:
    lines = [line for line in invoice.lines if line.kind is LineKind.USAGE]
    assert [line.key for line in lines] == [u.key for u in spec.usage]  # all kept, in order
    for line, usage in zip(lines, spec.usage, strict=True):
        assert isinstance(line.rated, RatedCharge)
        assert line.exact_amount == line.rated.amount
        charge = usage.charge
        exact = charge.model is PricingModel.GRADUATED or (
            charge.model is PricingModel.PER_UNIT and charge.package_size in EXACT_SIZES
        )
        if exact:
            assert line.exact_amount == exact_amount_oracle(charge, usage.quantity)


@BOUNDED
@given(spec=invoice_inputs())
def test_every_line_is_rounded_once_and_the_totals_add_up(spec):
    places = PLACES[spec.currency]

    invoice = invoice_price(spec)

    for line in invoice.lines:
        # each line's amount is its exact amount rounded half up to the currency, once
        assert line.amount == half_up(line.exact_amount, places)
        assert line.amount.as_tuple().exponent == -places
        assert_exact_amount_is_unrounded(line, spec)
    # usage lines are all kept, zero or not, with their exact amounts
    assert_usage_exact_amounts_are_unrounded(invoice, spec)
    # the subtotal is the sum of rounded lines; credits in [0, subtotal]; tax rounded once
    assert invoice.subtotal == wide_sum(line.amount for line in invoice.lines)
    assert invoice.credits_applied == max(D(0), min(spec.credits_available, invoice.subtotal))
    taxable = invoice.subtotal - invoice.credits_applied
    assert invoice.tax == half_up(WIDE.multiply(taxable, spec.tax_rate), places)
    assert invoice.total == invoice.subtotal - invoice.credits_applied + invoice.tax


@BOUNDED
@given(spec=invoice_inputs())
def test_minimum_line_only_when_rounded_usage_falls_short(spec):
    places = PLACES[spec.currency]
    commitment_exact = WIDE.divide(
        WIDE.multiply(spec.minimum_commitment, D(spec.share.days)), D(spec.share.of_days)
    )
    commitment = half_up(commitment_exact, places)

    invoice = invoice_price(spec)

    usage_total = wide_sum(line.amount for line in invoice.lines if line.kind is LineKind.USAGE)
    minimums = [line for line in invoice.lines if line.kind is LineKind.MINIMUM]
    if usage_total < commitment:
        (line,) = minimums
        assert line.amount == commitment - usage_total
    else:
        assert minimums == []


@BOUNDED
@given(spec=invoice_inputs())
@example(
    spec=InvoiceInput(
        currency="JPY",
        base_fee=D(1),
        minimum_commitment=D(0),
        share=Share(days=1, of_days=3),
        base_fee_share=None,
        trial=False,
        usage=(),
        adjustments=(),
        extra_lines=(),
        credits_available=D(0),
        tax_rate=D(0),
        plan_name="",
    )
)
def test_base_fee_line_only_when_due(spec):
    invoice = invoice_price(spec)

    fees = [line for line in invoice.lines if line.kind is LineKind.BASE_FEE]
    share = spec.base_fee_share or spec.share
    prorated = spec.base_fee * share.days / share.of_days if share.of_days else D(0)
    # A fee that rounds to nothing in the minor unit (1 JPY for 1 of 3 days) is no line.
    if spec.trial or half_up(prorated, PLACES[spec.currency]) == 0:
        assert fees == []
    else:
        (fee,) = fees
        assert fee.amount <= spec.base_fee
