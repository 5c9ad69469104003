"""What a group of calls costs at the price book: pure functions on exact decimals.

Token counts follow OpenTelemetry: cache reads and cache writes are part of the input tokens,
reasoning tokens part of the output tokens. Token prices are per 1,000,000 tokens.
"""

from dataclasses import dataclass
from decimal import Decimal

PER_MILLION = Decimal(1_000_000)
ZERO = Decimal(0)


@dataclass(frozen=True)
class TokenPrices:
    """A model's prices per 1,000,000 tokens; None falls back (cache to input, reasoning to
    output)."""

    input: Decimal | None
    output: Decimal | None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None


@dataclass(frozen=True)
class CallPrices:
    """A third-party API's price per call and per upstream credit."""

    per_call: Decimal | None = None
    per_credit: Decimal | None = None


@dataclass(frozen=True)
class ComputePrices:
    """A service's internal compute rate per request and per millisecond of latency."""

    per_request: Decimal | None = None
    per_ms: Decimal | None = None


@dataclass(frozen=True)
class Usage:
    """The sums of a group of calls that the price book prices."""

    calls: int
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    credits: Decimal = ZERO
    latency_ms: Decimal = ZERO


def _or(value: Decimal | None, fallback: Decimal | None) -> Decimal:
    if value is not None:
        return value
    return fallback if fallback is not None else ZERO


def token_cost(usage: Usage, prices: TokenPrices, *, uncached: bool = False) -> Decimal:
    """The tokens' cost; ``uncached`` prices cache reads as plain input (what a cache hit
    would have cost without the cache)."""
    input_price = _or(prices.input, None)
    output_price = _or(prices.output, None)
    cache_read = input_price if uncached else _or(prices.cache_read, prices.input)
    cache_write = _or(prices.cache_write, prices.input)
    reasoning = _or(prices.reasoning, prices.output)
    plain_input = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
    plain_output = max(usage.output_tokens - usage.reasoning_tokens, 0)
    total = (
        plain_input * input_price
        + usage.cache_read_tokens * cache_read
        + usage.cache_write_tokens * cache_write
        + plain_output * output_price
        + usage.reasoning_tokens * reasoning
    )
    return total / PER_MILLION


def call_cost(usage: Usage, prices: CallPrices) -> Decimal:
    return usage.calls * _or(prices.per_call, None) + usage.credits * _or(prices.per_credit, None)


def compute_cost(usage: Usage, prices: ComputePrices) -> Decimal:
    return usage.calls * _or(prices.per_request, None) + usage.latency_ms * _or(prices.per_ms, None)


@dataclass(frozen=True)
class PricedCost:
    cost: Decimal
    uncached_cost: Decimal  # the same calls with cache reads at the input price
    priced: bool  # whether any price applied


def price_book_cost(
    usage: Usage,
    *,
    tokens: TokenPrices | None,
    call: CallPrices | None,
    compute: ComputePrices | None,
) -> PricedCost:
    """Every price that applies, added: a model's token prices, a third-party API's call
    prices and a service's compute rate (each present only where the book has it)."""
    cost = uncached = ZERO
    if tokens is not None:
        cost += token_cost(usage, tokens)
        uncached += token_cost(usage, tokens, uncached=True)
    for extra in (
        call_cost(usage, call) if call is not None else None,
        compute_cost(usage, compute) if compute is not None else None,
    ):
        if extra is not None:
            cost += extra
            uncached += extra
    return PricedCost(cost, uncached, tokens is not None or call is not None or compute is not None)
