"""The benchmark's traffic: a believable mix of API and LLM calls from tenants of power-law sizes.

Every event exists twice, built from one dict: as JSON in a request body for the HTTP endpoint,
and as the tuple ingestion would store (``STORED_COLUMNS`` order) for the raw COPY ceiling and the
rollup load. Generation is seeded, so runs differ only in the clock.
"""

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

from apps.metering.services.event_schema import ATTRIBUTE_COLUMNS

# Live traffic: most events happened within the last RECENT_MINUTES (a collector flushing every
# few seconds); a ``late_fraction`` of them (retries, offline clients) anywhere in the last
# SPREAD_DAYS, inside the 35-day late window with room to spare. The 5-minute future skew never
# matters: nothing is later than the ``now`` the workload is built at.
RECENT_MINUTES = 60
SPREAD_DAYS = 30
LATE_FRACTION = 0.02
BATCH_SIZE = 1000

# A product's call shapes: (feature, service, type, endpoint, model). Dimensions are correlated as
# in real traffic (a feature calls a few endpoints through one service), so an hour of one tenant
# rolls up into tens of rows, not one per event. Earlier routes are busier (weights 1/rank).
_ROUTES = (
    ("assistant", "orchestrator", "llm.call", "/v1/chat/completions", "gpt-4o"),
    ("assistant", "gateway", "api.call", "/v1/chat/completions", None),
    ("search", "retriever", "api.call", "/v1/search", None),
    ("assistant", "orchestrator", "llm.call", "/v1/chat/completions", "claude-sonnet-4"),
    ("search", "retriever", "llm.call", "/v1/embeddings", "text-embedding-3-small"),
    ("summarize", "orchestrator", "llm.call", "/v1/chat/completions", "gpt-4o-mini"),
    ("summarize", "gateway", "api.call", "/v1/documents/{id}", None),
    ("assistant", "retriever", "api.call", "/v1/search", None),
    ("classify", "orchestrator", "llm.call", "/v1/chat/completions", "claude-haiku-3.5"),
    ("classify", "gateway", "api.call", "/v1/moderations", None),
    ("extract", "orchestrator", "llm.call", "/v1/chat/completions", "gemini-2.0-flash"),
    ("extract", "gateway", "api.call", "/v1/files/{id}/content", None),
    ("extract", "gateway", "api.call", "/v1/documents", None),
    ("translate", "orchestrator", "llm.call", "/v1/chat/completions", "gpt-4o-mini"),
    ("autocomplete", "gateway", "llm.call", "/v1/chat/completions", "gemini-2.0-flash"),
    ("images", "gateway", "api.call", "/v1/images/generations", None),
)
_ROUTE_WEIGHTS = [1 / rank for rank in range(1, len(_ROUTES) + 1)]
_REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-2")
_PLANS = ("free", "pro", "enterprise")
# model: (provider, $ per 1M input tokens, $ per 1M output tokens)
_MODELS = {
    "gpt-4o": ("openai", Decimal("2.50"), Decimal("10.00")),
    "gpt-4o-mini": ("openai", Decimal("0.15"), Decimal("0.60")),
    "text-embedding-3-small": ("openai", Decimal("0.02"), Decimal("0")),
    "claude-sonnet-4": ("anthropic", Decimal("3.00"), Decimal("15.00")),
    "claude-haiku-3.5": ("anthropic", Decimal("0.80"), Decimal("4.00")),
    "gemini-2.0-flash": ("google", Decimal("0.10"), Decimal("0.40")),
}
_PER_MILLION = Decimal("0.000001")
_COST_PLACES = Decimal("0.00000001")
_API_CALL_PRICE = Decimal("0.00040000")  # $ per external API call

_batch_encoder = msgspec.json.Encoder()
_properties_encoder = msgspec.json.Encoder(order="sorted")


@dataclass(frozen=True)
class BenchTenant:
    external_id: str
    id: UUID
    weight: float  # relative share of traffic


def tenant_specs(count: int) -> list[tuple[str, float]]:
    """External ids and power-law traffic weights (rank ** -1.2) of ``count`` tenants."""
    return [(f"bench-t{rank:02d}", rank**-1.2) for rank in range(1, count + 1)]


def _status(rng: random.Random) -> tuple[int, int]:
    """An HTTP status and the attempt number: mostly first-try 200s, some 429/5xx and retries."""
    roll = rng.random()
    if roll < 0.02:
        return 429, 1
    if roll < 0.03:
        return 503, 1
    return 200, 2 if roll < 0.05 else 1


def event_make(
    rng: random.Random, *, index: int, tenant: str, now_ms: int, late_fraction: float
) -> dict[str, Any]:
    """One event as a client sends it: cost as a decimal string, latency as a JSON number."""
    if rng.random() < late_fraction:
        at_ms = now_ms - rng.randrange(SPREAD_DAYS * 86_400_000)
    else:
        at_ms = now_ms - rng.randrange(RECENT_MINUTES * 60_000)
    timestamp = datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(timespec="milliseconds")
    status_code, attempt = _status(rng)
    feature, service, event_type, endpoint, model = rng.choices(_ROUTES, _ROUTE_WEIGHTS)[0]
    event: dict[str, Any] = {
        "id": f"ev_{index:09d}_{rng.getrandbits(32):08x}",
        "tenant": tenant,
        "type": event_type,
        "timestamp": timestamp,
        "endpoint": endpoint,
        "feature": feature,
        "service": service,
        "environment": "production" if rng.random() < 0.95 else "staging",
        "trace_id": f"{rng.getrandbits(128) | 1:032x}",
        "span_id": f"{rng.getrandbits(64) | 1:016x}",
        "status_code": status_code,
        "attempt": attempt,
        "properties": {"region": rng.choice(_REGIONS), "plan": rng.choice(_PLANS)},
    }
    if model is None:
        event["bytes_in"] = rng.randrange(200, 20_000)
        event["bytes_out"] = rng.randrange(200, 200_000)
        event["latency_ms"] = round(rng.lognormvariate(4.0, 0.8), 3)
        event["cost"] = str(_API_CALL_PRICE)
        return event
    provider, price_in, price_out = _MODELS[model]
    input_tokens = int(rng.lognormvariate(6.5, 1.0)) + 1
    output_tokens = int(rng.lognormvariate(5.0, 0.9)) + 1
    cost = (input_tokens * price_in + output_tokens * price_out) * _PER_MILLION
    event.update(
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=str(cost.quantize(_COST_PLACES)),
        latency_ms=round(rng.lognormvariate(6.8, 0.7), 3),
        parent_span_id=f"{rng.getrandbits(64) | 1:016x}",
        cache_hit=rng.random() < 0.2,
    )
    if event["cache_hit"]:
        event["cache_read_tokens"] = input_tokens // 2
    event["properties"]["prompt_version"] = f"v{rng.randrange(1, 6)}"
    return event


_COST = ATTRIBUTE_COLUMNS.index("cost")
_COST_CURRENCY = ATTRIBUTE_COLUMNS.index("cost_currency")
_LATENCY = ATTRIBUTE_COLUMNS.index("latency_ms")


def event_row(event: dict[str, Any], *, tenant_id: UUID, received_at: datetime) -> tuple:
    """The row ingestion stores for ``event`` (``event_store.STORED_COLUMNS`` order)."""
    get = event.get
    attributes = [get(column) for column in ATTRIBUTE_COLUMNS]
    if attributes[_COST] is not None:
        attributes[_COST] = Decimal(attributes[_COST])
        attributes[_COST_CURRENCY] = "USD"  # the default cost currency
    if attributes[_LATENCY] is not None:
        attributes[_LATENCY] = Decimal(repr(attributes[_LATENCY]))  # the JSON literal
    return (
        tenant_id,
        datetime.fromisoformat(event["timestamp"]),
        event["id"],
        event["type"],
        received_at,
        *attributes,
        _properties_encoder.encode(event["properties"]).decode(),
        False,
    )


def events_make(
    *,
    count: int,
    tenants: list[BenchTenant],
    seed: int,
    now: datetime,
    first_index: int = 0,
    late_fraction: float = LATE_FRACTION,
) -> Iterator[tuple[BenchTenant, dict[str, Any]]]:
    """``count`` events with their tenant, tenants picked by weight; ``late_fraction`` 1.0
    spreads them all over the last SPREAD_DAYS."""
    rng = random.Random(seed)
    now_ms = int(now.timestamp() * 1000)
    picks = rng.choices(tenants, weights=[t.weight for t in tenants], k=count)
    for offset, tenant in enumerate(picks):
        yield (
            tenant,
            event_make(
                rng,
                index=first_index + offset,
                tenant=tenant.external_id,
                now_ms=now_ms,
                late_fraction=late_fraction,
            ),
        )


@dataclass
class IngestWorkload:
    """Pre-encoded request bodies and the same events as rows, built before any clock starts."""

    bodies: list[bytes]
    batch_sizes: list[int]
    rows: list[tuple]

    @property
    def events(self) -> int:
        return sum(self.batch_sizes)

    @property
    def body_bytes(self) -> int:
        return sum(len(body) for body in self.bodies)


def ingest_workload_make(
    *,
    count: int,
    tenants: list[BenchTenant],
    now: datetime,
    seed: int = 42,
    first_index: int = 0,
    batch_size: int = BATCH_SIZE,
    late_fraction: float = LATE_FRACTION,
) -> IngestWorkload:
    """``count`` events in bodies of ``batch_size`` (``{"events": [...]}``) and as rows."""
    workload = IngestWorkload(bodies=[], batch_sizes=[], rows=[])
    received_at = now.replace(microsecond=0)
    batch: list[dict[str, Any]] = []
    generated = events_make(
        count=count,
        tenants=tenants,
        seed=seed,
        now=now,
        first_index=first_index,
        late_fraction=late_fraction,
    )
    for tenant, event in generated:
        batch.append(event)
        workload.rows.append(event_row(event, tenant_id=tenant.id, received_at=received_at))
        if len(batch) == batch_size:
            workload.bodies.append(_batch_encoder.encode({"events": batch}))
            workload.batch_sizes.append(len(batch))
            batch = []
    if batch:
        workload.bodies.append(_batch_encoder.encode({"events": batch}))
        workload.batch_sizes.append(len(batch))
    return workload
