"""One small, fully known traffic fixture for the cost tests: a price book and FX table, and
events over two October days and one September day sent through the real ingestion path, then
rolled up (usage, then cost).

Every expected cost below is worked out by hand from the literal prices and token counts, as
Decimal expressions (never by the code under test). Prices are per 1,000,000 tokens.

Price book (effective 2026-01-01, operator currency USD):
  llm   openai/gpt-x        input 2.00, output 8.00, cache_read 0.50 (cache_write -> input,
                            reasoning -> output)
  llm   anthropic/claude-y  input 3.00, output 15.00, cache_read 0.30, cache_write 3.75
  api   searchco/search     per_call 0.002, per_credit 0.01
  compute gateway           per_request 0.0001, per_ms 0.000002
FX (USD per unit): EUR 1.10 from 2026-09-01, EUR 1.20 from 2026-10-06; no GBP rate.

acme, 2026-10-05 (day 1), trace T1 in workflow "support": A1 root -> A2 -> A3 (grandchild),
A1 -> A4, A1 -> A5 (a retry, attempt 2); then untraced A6 (status 500), A7 (cache hit), A8
(a model the book does not price).
acme, 2026-10-06 (day 2), trace T2 in "support": B1 root -> B2, B1 -> B3; then B4 (a cache
hit with its own USD cost), B5 (own cost in GBP, which has no FX rate).
globex, 2026-10-06: G1.
acme, 2026-09-15, trace T3 in "support": S1 root -> S2; then S3 (cache hit), S4 (EUR).
"""

import itertools
import json
from decimal import Decimal as D

from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.costs.services.rollup import cost_rollup_pending_run
from apps.metering.services.rollup import rollup_pending_run
from tests.metering.ingesting import ingest_events

M = D(1_000_000)

PRICE_BOOK = {
    "price_book": [
        {
            "effective_from": "2026-01-01",
            "note": "test prices",
            "llm": [
                {
                    "provider": "openai",
                    "model": "gpt-x",
                    "input": "2.00",
                    "output": "8.00",
                    "cache_read": "0.50",
                },
                {
                    "provider": "anthropic",
                    "model": "claude-y",
                    "input": "3.00",
                    "output": "15.00",
                    "cache_read": "0.30",
                    "cache_write": "3.75",
                },
            ],
            "apis": [
                {
                    "provider": "searchco",
                    "endpoint": "search",
                    "per_call": "0.002",
                    "per_credit": "0.01",
                }
            ],
            "compute": [{"service": "gateway", "per_request": "0.0001", "per_ms": "0.000002"}],
        }
    ],
    "fx_rates": [
        {"currency": "EUR", "date": "2026-09-01", "rate": "1.10"},
        {"currency": "EUR", "date": "2026-10-06", "rate": "1.20"},
    ],
}

T1 = "a1" * 16
T2 = "b2" * 16
T3 = "c3" * 16
DAY1 = "2026-10-05"
DAY2 = "2026-10-06"
SEPT = "2026-09-15"

# --- the expected cost of every event, by hand -----------------------------------------------
# A1: gateway, 1 request + 120 ms
A1 = 1 * D("0.0001") + 120 * D("0.000002")  # 0.00034
# A2: gpt-x, 1000 input + 200 output
A2 = (1000 * D("2.00") + 200 * D("8.00")) / M  # 0.0036
# A3: searchco/search, 1 call + 3 credits
A3 = 1 * D("0.002") + 3 * D("0.01")  # 0.032
# A4: own cost 0.05 EUR on 2026-10-05, at the 2026-09-01 rate 1.10
A4 = D("0.05") * D("1.10")  # 0.055
# A5: the retry of A2, same tokens
A5 = (1000 * D("2.00") + 200 * D("8.00")) / M  # 0.0036
# A6: failed gpt-x call, 500 input
A6 = 500 * D("2.00") / M  # 0.001
# A7: claude-y cache hit: 2000 input of which 1500 cache reads, 100 output
A7 = (500 * D("3.00") + 1500 * D("0.30") + 100 * D("15.00")) / M  # 0.00345
A7_UNCACHED = (2000 * D("3.00") + 100 * D("15.00")) / M  # 0.0075
A7_AVOIDED = A7_UNCACHED - A7  # 0.00405
A8 = D(0)  # local/mystery: not in the book, no own cost
# B1: gateway, 1 request + 80 ms
B1 = 1 * D("0.0001") + 80 * D("0.000002")  # 0.00026
# B2: gpt-x 400 input of which 100 cache writes (-> input price), 600 output of which 500
# reasoning (-> output price)
B2 = (300 * D("2.00") + 100 * D("2.00") + 100 * D("8.00") + 500 * D("8.00")) / M  # 0.0056
# B3: own cost 0.05 EUR on 2026-10-06, at that day's rate 1.20
B3 = D("0.05") * D("1.20")  # 0.06
# B4: claude-y cache hit with its own cost 0.002 USD; uncached: 1000 input at 3.00
B4 = D("0.002")
B4_AVOIDED = 1000 * D("3.00") / M - B4  # 0.001
B5 = D(0)  # own cost in GBP, no GBP rate: uncosted
# G1: globex gpt-x, 10000 input + 1000 output
G1 = (10000 * D("2.00") + 1000 * D("8.00")) / M  # 0.028
# September
S1 = 1 * D("0.0001") + 100 * D("0.000002")  # 0.0003
S2 = (1000 * D("2.00") + 100 * D("8.00")) / M  # 0.0028
S3 = 1000 * D("0.30") / M  # 0.0003 (all 1000 input tokens are cache reads)
S3_AVOIDED = 1000 * D("3.00") / M - S3  # 0.0027
S4 = D("0.10") * D("1.10")  # 0.11

ACME_DAY1 = A1 + A2 + A3 + A4 + A5 + A6 + A7 + A8  # 0.09899, 8 calls
ACME_DAY2 = B1 + B2 + B3 + B4 + B5  # 0.06786, 5 calls
OCT_COST = ACME_DAY1 + ACME_DAY2 + G1  # 0.19485, 14 calls
OCT_CALLS = 14
SEP_COST = S1 + S2 + S3 + S4  # 0.1134, 4 calls
SEP_CALLS = 4

_ids = itertools.count()


def event(tenant: str, kind: str, at: str, **attributes) -> dict:
    return {
        "id": f"cost-{next(_ids)}",
        "tenant": tenant,
        "type": kind,
        "timestamp": at,
        "team": "core",
        "environment": "prod",
        **attributes,
    }


def span(trace: str, number: int, parent: int | None = None) -> dict:
    out = {"trace_id": trace, "span_id": f"{number:016x}"}
    if parent is not None:
        out["parent_span_id"] = f"{parent:016x}"
    return out


def gpt(**kw) -> dict:
    return {"provider": "openai", "model": "gpt-x", **kw}


def claude(**kw) -> dict:
    return {"provider": "anthropic", "model": "claude-y", **kw}


SUPPORT = {"workflow": "support", "feature": "chat"}


def traffic_events() -> list[dict]:
    d1, d2, sep = f"{DAY1}T10:00:00Z", f"{DAY2}T11:00:00Z", f"{SEPT}T09:00:00Z"
    return [
        # day 1: trace T1
        event(
            "acme", "http.request", d1, service="gateway", latency_ms=120, **SUPPORT, **span(T1, 1)
        ),
        event(
            "acme",
            "llm.call",
            d1,
            **gpt(input_tokens=1000, output_tokens=200),
            **SUPPORT,
            **span(T1, 2, 1),
        ),
        event(
            "acme",
            "api.call",
            d1,
            provider="searchco",
            endpoint="search",
            credits=3,
            external=True,
            **SUPPORT,
            **span(T1, 3, 2),
        ),
        event(
            "acme",
            "api.call",
            d1,
            provider="transco",
            endpoint="translate",
            cost="0.05",
            cost_currency="EUR",
            external=True,
            **SUPPORT,
            **span(T1, 4, 1),
        ),
        event(
            "acme",
            "llm.call",
            d1,
            **gpt(input_tokens=1000, output_tokens=200),
            attempt=2,
            **SUPPORT,
            **span(T1, 5, 1),
        ),
        # day 1: untraced
        event(
            "acme",
            "llm.call",
            d1,
            **gpt(input_tokens=500, output_tokens=0),
            status_code=500,
            feature="chat",
        ),
        event(
            "acme",
            "llm.call",
            d1,
            **claude(input_tokens=2000, cache_read_tokens=1500, output_tokens=100),
            cache_hit=True,
            feature="chat",
        ),
        event(
            "acme",
            "llm.call",
            d1,
            provider="local",
            model="mystery",
            input_tokens=100,
            output_tokens=100,
            feature="search",
        ),
        # day 2: trace T2
        event(
            "acme", "http.request", d2, service="gateway", latency_ms=80, **SUPPORT, **span(T2, 1)
        ),
        event(
            "acme",
            "llm.call",
            d2,
            **gpt(
                input_tokens=400, cache_write_tokens=100, output_tokens=600, reasoning_tokens=500
            ),
            **SUPPORT,
            **span(T2, 2, 1),
        ),
        event(
            "acme",
            "api.call",
            d2,
            provider="transco",
            endpoint="translate",
            cost="0.05",
            cost_currency="EUR",
            external=True,
            **SUPPORT,
            **span(T2, 3, 1),
        ),
        # day 2: untraced
        event(
            "acme",
            "llm.call",
            d2,
            **claude(input_tokens=1000, cache_read_tokens=1000, output_tokens=0),
            cache_hit=True,
            cost="0.002",
            cost_currency="USD",
            feature="chat",
        ),
        event(
            "acme",
            "api.call",
            d2,
            provider="mapsco",
            endpoint="geocode",
            cost="1.00",
            cost_currency="GBP",
            external=True,
            feature="search",
        ),
        event(
            "globex", "llm.call", d2, **gpt(input_tokens=10000, output_tokens=1000), feature="chat"
        ),
        # September: trace T3 and two untraced calls
        event(
            "acme", "http.request", sep, service="gateway", latency_ms=100, **SUPPORT, **span(T3, 1)
        ),
        event(
            "acme",
            "llm.call",
            sep,
            **gpt(input_tokens=1000, output_tokens=100),
            **SUPPORT,
            **span(T3, 2, 1),
        ),
        event(
            "acme",
            "llm.call",
            sep,
            **claude(input_tokens=1000, cache_read_tokens=1000, output_tokens=0),
            cache_hit=True,
            feature="chat",
        ),
        event(
            "acme",
            "api.call",
            sep,
            provider="transco",
            endpoint="translate",
            cost="0.10",
            cost_currency="EUR",
            external=True,
            feature="chat",
        ),
    ]


def catalog_load(extra: dict | None = None) -> None:
    doc = {**PRICE_BOOK, **(extra or {})}
    catalog_apply(doc=catalog_parse(content=json.dumps(doc)))


def traffic_send(make_tenant, catalog: dict | None = None) -> dict:
    """The tenants, the price book (and ``catalog``, applied before the events so its meters
    count them) and every event, rolled up; returns the tenants by name."""
    tenants = {"acme": make_tenant("acme"), "globex": make_tenant("globex", currency="EUR")}
    catalog_load(catalog)
    ingest_events(*traffic_events(), backfill=True)
    rollup_pending_run()
    cost_rollup_pending_run()
    return tenants


# Billing for the margin: 0.10 per LLM call on top of a base fee; acme in USD (from
# September), globex in EUR and initech in JPY (from October; JPY has no FX rate).
BILLING = {
    "meters": [{"code": "llm_calls", "event_type": "llm.call", "aggregation": "count"}],
    "rate_cards": [
        {
            "code": f"card-{currency.lower()}",
            "currency": currency,
            "effective_from": "2026-01-01T00:00:00Z",
            "charges": [{"meter": "llm_calls", "model": "per_unit", "unit_price": price}],
        }
        for currency, price in (("USD", "0.10"), ("EUR", "0.10"), ("JPY", "10"))
    ],
    "plans": [
        {
            "code": "usd",
            "name": "USD",
            "interval": "month",
            "base_fee": "10.00",
            "rate_card": "card-usd",
        },
        {
            "code": "eur",
            "name": "EUR",
            "interval": "month",
            "base_fee": "20.00",
            "rate_card": "card-eur",
        },
        {
            "code": "jpy",
            "name": "JPY",
            "interval": "month",
            "base_fee": "1000",
            "rate_card": "card-jpy",
        },
    ],
}
