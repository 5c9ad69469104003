"""The demo business: who the customers are, what they call, and what each call costs us.

A fictional AI-API company with about thirty partners (tenants) billed in USD, EUR, GBP or JPY,
internal teams that receive chargeback (cost centers), the features its API sells, and the upstream
prices of the models and third-party APIs behind them. Everything random about it (who is big, who
signed up when, who never calls) is drawn from one seeded ``random.Random``, so a seed always
describes the same business. Demo data only: the prices approximate public list prices and are not
a price book.
"""

import random
from dataclasses import dataclass
from decimal import Decimal

_PER_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class TenantSpec:
    external_id: str
    name: str
    currency: str  # ISO 4217
    timezone: str  # IANA
    tax_rate: Decimal  # a fraction: 0.2 is 20 %
    features: tuple[str, ...]  # what the partner bought the API for, most used first

    @property
    def billing_email(self) -> str:
        return f"billing@{self.external_id}.example"


def _t(external_id: str, name: str, currency: str, tz: str, tax: str, *features: str) -> TenantSpec:
    return TenantSpec(external_id, name, currency, tz, Decimal(tax), features)


TENANTS: tuple[TenantSpec, ...] = (
    _t("northwind-health", "Northwind Health", "USD", "America/Chicago", "0", "doc-extract",
       "summarize", "chat-assistant"),
    _t("lumen-legal", "Lumen Legal", "USD", "America/New_York", "0", "summarize", "doc-extract",
       "search"),
    _t("brightpath-edu", "Brightpath Education", "USD", "America/Los_Angeles", "0",
       "chat-assistant", "summarize"),
    _t("kestrel-logistics", "Kestrel Logistik", "EUR", "Europe/Berlin", "0.19", "doc-extract",
       "search"),
    _t("atelier-moda", "Atelier Moda", "EUR", "Europe/Rome", "0.22", "recommend", "search",
       "embeddings"),
    _t("polder-payments", "Polder Payments", "EUR", "Europe/Amsterdam", "0.21", "doc-extract",
       "chat-assistant"),
    _t("maison-conseil", "Maison Conseil", "EUR", "Europe/Paris", "0.20", "summarize", "search"),
    _t("tidewater-insurance", "Tidewater Insurance", "GBP", "Europe/London", "0.20",
       "doc-extract", "chat-assistant", "summarize"),
    _t("quill-and-ink", "Quill & Ink Publishing", "GBP", "Europe/London", "0.20", "summarize",
       "embeddings"),
    _t("sakura-commerce", "Sakura Commerce", "JPY", "Asia/Tokyo", "0.10", "recommend", "search",
       "chat-assistant"),
    _t("kumo-robotics", "Kumo Robotics", "JPY", "Asia/Tokyo", "0.10", "embeddings", "search"),
    _t("harbor-retail", "Harbor Retail Group", "USD", "America/New_York", "0", "recommend",
       "chat-assistant", "search"),
    _t("copperleaf-crm", "Copperleaf CRM", "USD", "America/Denver", "0", "chat-assistant",
       "summarize", "embeddings"),
    _t("vela-travel", "Vela Travel", "EUR", "Europe/Madrid", "0.21", "chat-assistant",
       "recommend"),
    _t("orbit-support", "Orbit Support Desk", "USD", "America/Los_Angeles", "0",
       "chat-assistant", "search"),
    _t("greenline-energy", "Greenline Energie", "EUR", "Europe/Vienna", "0.20", "doc-extract",
       "summarize"),
    _t("pinecrest-bank", "Pinecrest Bank", "USD", "America/New_York", "0", "doc-extract",
       "chat-assistant"),
    _t("emerald-isle-games", "Emerald Isle Games", "EUR", "Europe/Dublin", "0.23",
       "chat-assistant", "recommend"),
    _t("southern-cross-media", "Southern Cross Media", "USD", "Australia/Sydney", "0.10",
       "summarize", "search"),
    _t("merlion-analytics", "Merlion Analytics", "USD", "Asia/Singapore", "0.09", "embeddings",
       "search", "summarize"),
    _t("andes-agritech", "Andes Agritech", "USD", "America/Santiago", "0.19", "doc-extract"),
    _t("maple-claims", "Maple Claims", "USD", "America/Toronto", "0.13", "doc-extract",
       "summarize"),
    _t("bazaar-bot", "Bazaar Bot", "USD", "Asia/Kolkata", "0.18", "chat-assistant", "recommend"),
    _t("nordlicht-media", "Nordlicht Media", "EUR", "Europe/Berlin", "0.19", "summarize",
       "embeddings"),
    _t("thames-recruiting", "Thames Recruiting", "GBP", "Europe/London", "0.20", "search",
       "summarize"),
    _t("osaka-docs", "Osaka Docs", "JPY", "Asia/Tokyo", "0.10", "doc-extract", "search"),
    _t("sunbelt-realty", "Sunbelt Realty", "USD", "America/Phoenix", "0", "search", "recommend"),
    _t("helix-bio", "Helix Bio", "USD", "America/New_York", "0", "search", "summarize",
       "embeddings"),
    _t("cedar-notes", "Cedar Notes", "USD", "America/Los_Angeles", "0", "summarize",
       "chat-assistant"),
    _t("atlantico-ledger", "Atlântico Ledger", "EUR", "Europe/Lisbon", "0.23", "doc-extract",
       "chat-assistant"),
)  # fmt: skip


@dataclass(frozen=True)
class CostCenterSpec:
    code: str
    name: str
    parent: str | None = None


# Parents come before their children: they are created in this order.
COST_CENTERS: tuple[CostCenterSpec, ...] = (
    CostCenterSpec("engineering", "Engineering"),
    CostCenterSpec("platform", "Platform", "engineering"),
    CostCenterSpec("search", "Search", "engineering"),
    CostCenterSpec("doc-ai", "Document AI", "engineering"),
    CostCenterSpec("product", "Product"),
    CostCenterSpec("support-bot", "Support Bot", "product"),
    CostCenterSpec("growth", "Growth", "product"),
)


@dataclass(frozen=True)
class FeatureSpec:
    """A product feature sold through the API: its templated route and the team (cost center
    code) that runs it."""

    code: str
    endpoint: str
    workflow: str
    team: str


FEATURES: dict[str, FeatureSpec] = {
    f.code: f
    for f in (
        FeatureSpec("search", "/v1/search", "semantic-search", "search"),
        FeatureSpec("summarize", "/v1/summarize", "summarize-document", "platform"),
        FeatureSpec("chat-assistant", "/v1/chat/completions", "support-agent", "support-bot"),
        FeatureSpec("doc-extract", "/v1/documents/{document_id}/extract", "extract-fields",
                    "doc-ai"),
        FeatureSpec("embeddings", "/v1/embeddings", "embed", "platform"),
        FeatureSpec("recommend", "/v1/users/{user_id}/recommendations", "personalize-feed",
                    "growth"),
    )
}  # fmt: skip


@dataclass(frozen=True)
class ModelPrice:
    """What a provider charges us for a model, in USD per 1,000,000 tokens. Cache reads are
    part of the input tokens and billed at ``cache_read`` instead of ``input``."""

    provider: str
    input: Decimal
    cache_read: Decimal
    output: Decimal
    external: bool = True  # False for the model we host ourselves (its price is our compute)


MODELS: dict[str, ModelPrice] = {
    "gpt-4o": ModelPrice("openai", Decimal("2.50"), Decimal("1.25"), Decimal("10.00")),
    "gpt-4o-mini": ModelPrice("openai", Decimal("0.15"), Decimal("0.075"), Decimal("0.60")),
    "text-embedding-3-small": ModelPrice("openai", Decimal("0.02"), Decimal(0), Decimal(0)),
    "claude-sonnet-4": ModelPrice("anthropic", Decimal("3.00"), Decimal("0.30"), Decimal("15.00")),
    "claude-3-5-haiku": ModelPrice("anthropic", Decimal("0.80"), Decimal("0.08"), Decimal("4.00")),
    "gemini-2.0-flash": ModelPrice("google", Decimal("0.10"), Decimal("0.025"), Decimal("0.40")),
    "llama-3.1-8b-instruct": ModelPrice(
        "self-hosted", Decimal("0.04"), Decimal("0.04"), Decimal("0.04"), external=False
    ),
}

# Third-party APIs priced per call (or per page for OCR), in USD.
EXTERNAL_PRICES: dict[tuple[str, str], Decimal] = {
    ("aws-textract", "detect-document-text"): Decimal("0.0015"),  # per page
    ("cohere", "rerank"): Decimal("0.002"),  # per search
    ("brave-search", "web-search"): Decimal("0.005"),  # per query
    ("zendesk", "create-ticket"): Decimal(0),  # flat subscription: no per-call price
}


def llm_cost(
    *, model: str, input_tokens: int, output_tokens: int, cache_read_tokens: int
) -> Decimal:
    """The USD cost of one LLM call, exact (at most 9 decimal places with these prices).
    ``input_tokens`` includes ``cache_read_tokens``, as OpenTelemetry counts them."""
    price = MODELS[model]
    fresh = input_tokens - cache_read_tokens
    total = (
        fresh * price.input + cache_read_tokens * price.cache_read + output_tokens * price.output
    )
    return total / _PER_MILLION


@dataclass(frozen=True)
class TenantPlan:
    """How one tenant behaves in this run of the demo."""

    spec: TenantSpec
    size: float  # relative share of traffic (power law); 0 for a tenant that never calls
    signup: float  # when it registered, as a fraction of the period (0 = first day)
    onboarding_days: float  # from sign-up to the first call
    growth: float  # traffic multiplier reached at the end of the period, relative to its start
    mix: dict[str, float]  # feature -> share of its traces
    users: int  # distinct end users behind its calls
    rate_limited: float  # chance that a call is refused with 429 and retried by the client


def business_plan(*, rng: random.Random) -> list[TenantPlan]:
    """Draw the demo business from ``rng``: power-law sizes (a few whales, a long tail),
    bigger partners signed up earlier, about one in eight never calls."""
    ranks = list(range(len(TENANTS)))
    rng.shuffle(ranks)
    silent = set(rng.sample(range(len(ranks) // 3, len(ranks)), k=max(1, len(ranks) // 8)))
    plans = []
    for spec, rank in zip(TENANTS, ranks, strict=True):
        size = 0.0 if rank in silent else (1.0 / (rank + 1) ** 1.15) * rng.uniform(0.7, 1.3)
        early = rank / len(TENANTS)
        signup = 0.0 if rank == 0 else min(0.9, max(0.0, early * 0.9 + rng.uniform(-0.2, 0.15)))
        plans.append(
            TenantPlan(
                spec=spec,
                size=size,
                signup=signup,
                onboarding_days=rng.uniform(0.1, 4.0),
                growth=rng.choice((0.6, 1.0, 1.5, 2.0, 2.5, 4.0)),
                mix=_feature_mix(rng, spec.features),
                users=max(5, int(4000 * size) + rng.randrange(20)),
                rate_limited=0.03 if rank < 3 else 0.002,
            )
        )
    return plans


def _feature_mix(rng: random.Random, features: tuple[str, ...]) -> dict[str, float]:
    weights = {f: rng.uniform(0.5, 1.0) / (i + 1) ** 1.5 for i, f in enumerate(features)}
    # A little of one more feature: partners try things beyond what they signed up for.
    extra = rng.choice([f for f in FEATURES if f not in features] or list(features))
    weights[extra] = weights.get(extra, 0.0) + 0.04
    total = sum(weights.values())
    return {feature: weight / total for feature, weight in weights.items()}
