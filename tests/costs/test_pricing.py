"""The pure pricing functions: OpenTelemetry token semantics (cache reads and writes inside the
input tokens, reasoning inside the output), prices per 1,000,000 tokens, fallbacks, and every
price that applies added. Expected values by hand."""

from decimal import Decimal as D

from apps.costs.pricing import (
    CallPrices,
    ComputePrices,
    TokenPrices,
    Usage,
    call_cost,
    compute_cost,
    price_book_cost,
    token_cost,
)

M = D(1_000_000)
FULL = TokenPrices(
    input=D("3.00"),
    output=D("15.00"),
    cache_read=D("0.30"),
    cache_write=D("3.75"),
    reasoning=D("20.00"),
)


def test_cache_and_reasoning_tokens_are_parts_of_input_and_output():
    # given 10,000 input tokens of which 4,000 cache reads and 1,000 cache writes, and 2,000
    # output tokens of which 500 reasoning
    usage = Usage(
        calls=1,
        input_tokens=10_000,
        cache_read_tokens=4_000,
        cache_write_tokens=1_000,
        output_tokens=2_000,
        reasoning_tokens=500,
    )

    cost = token_cost(usage, FULL)

    # plain input 5,000 x 3.00 + 4,000 x 0.30 + 1,000 x 3.75 + plain output 1,500 x 15.00
    # + 500 x 20.00 = 15000 + 1200 + 3750 + 22500 + 10000 = 52450 per million
    assert cost == D("0.05245")
    assert (
        cost
        == (5000 * D("3.00") + 4000 * D("0.30") + 1000 * D("3.75")) / M
        + (1500 * D("15.00") + 500 * D("20.00")) / M
    )


def test_missing_cache_prices_fall_back_to_input_and_reasoning_to_output():
    prices = TokenPrices(input=D("2.00"), output=D("8.00"))
    usage = Usage(
        calls=1,
        input_tokens=1_000,
        cache_read_tokens=300,
        cache_write_tokens=200,
        output_tokens=400,
        reasoning_tokens=100,
    )

    # every input token at 2.00, every output token at 8.00: 1000 x 2 + 400 x 8 = 5200
    assert token_cost(usage, prices) == D("0.0052")


def test_uncached_prices_cache_reads_as_input_but_keeps_cache_writes():
    usage = Usage(calls=1, input_tokens=2_000, cache_read_tokens=1_500, cache_write_tokens=100)

    # uncached: 1,500 reads at the input price 3.00, 100 writes still at 3.75, 400 plain at 3.00
    assert (
        token_cost(usage, FULL, uncached=True)
        == (1500 * D("3.00") + 100 * D("3.75") + 400 * D("3.00")) / M
    )
    # cached: 1,500 reads at 0.30
    assert token_cost(usage, FULL) == (1500 * D("0.30") + 100 * D("3.75") + 400 * D("3.00")) / M


def test_token_prices_are_per_million_and_stay_exact():
    # 1 token at 0.000001 per million is 1e-12: no float, no rounding
    usage = Usage(calls=1, input_tokens=1)
    assert token_cost(usage, TokenPrices(input=D("0.000001"), output=D(0))) == D("1E-12")


def test_inconsistent_counts_never_make_plain_tokens_negative():
    # cache reads above the input count (a bad client) price the reads, no negative input
    usage = Usage(calls=1, input_tokens=100, cache_read_tokens=300, output_tokens=50)
    assert token_cost(usage, FULL) == (300 * D("0.30") + 50 * D("15.00")) / M


def test_call_and_compute_costs():
    usage = Usage(calls=4, credits=D("2.5"), latency_ms=D("1500.5"))

    assert call_cost(usage, CallPrices(per_call=D("0.002"), per_credit=D("0.01"))) == (
        4 * D("0.002") + D("2.5") * D("0.01")
    )
    assert call_cost(usage, CallPrices(per_call=D("0.002"))) == 4 * D("0.002")
    assert compute_cost(usage, ComputePrices(per_request=D("0.0001"), per_ms=D("0.000002"))) == (
        4 * D("0.0001") + D("1500.5") * D("0.000002")
    )
    assert compute_cost(usage, ComputePrices(per_ms=D("0.000002"))) == D("1500.5") * D("0.000002")


def test_price_book_cost_adds_every_price_that_applies():
    usage = Usage(
        calls=2, input_tokens=1_000, cache_read_tokens=1_000, credits=D(3), latency_ms=D(10)
    )

    priced = price_book_cost(
        usage,
        tokens=TokenPrices(input=D("1.00"), output=D("2.00"), cache_read=D("0.10")),
        call=CallPrices(per_call=D("0.5")),
        compute=ComputePrices(per_request=D("0.25")),
    )

    tokens = 1000 * D("0.10") / M
    tokens_uncached = 1000 * D("1.00") / M
    extra = 2 * D("0.5") + 2 * D("0.25")
    assert priced.priced
    assert priced.cost == tokens + extra
    assert priced.uncached_cost == tokens_uncached + extra


def test_price_book_cost_without_any_price_is_unpriced():
    priced = price_book_cost(Usage(calls=3, input_tokens=10), tokens=None, call=None, compute=None)
    assert (priced.cost, priced.uncached_cost, priced.priced) == (D(0), D(0), False)
