"""What one API call of the demo business looks like from the inside: a trace of spans.

Each feature has a workflow that fans out from a root ``api.call`` span into internal service
calls, third-party calls (``external``), LLM calls with tokens and their USD cost, and tool calls.
Upstream failures (429, 5xx) are retried with backoff as attempts 2 and 3; some LLM calls hit the
provider's prompt cache. Events are plain dicts in the ingestion API's shape, timed to the
millisecond, one per span, sent later in batches.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from apps.demo.business import EXTERNAL_PRICES, FEATURES, MODELS, llm_cost

Event = dict[str, Any]


@dataclass(frozen=True)
class Incident:
    """What the demo plants for anomaly detection to find: over the window's last ``hours``,
    a new release (``deployment``) of ``feature``'s service serves every partner's calls of
    it, and quietly moved to a dearer ``model``. Traffic stays the same; the cost per call
    jumps several times over."""

    feature: str
    deployment: str
    model: str
    hours: int


INCIDENT = Incident(
    feature="summarize", deployment="summarize-2.4.0", model="claude-sonnet-4", hours=36
)
_RETRYABLE = (429, 429, 429, 500, 503)  # rate limits dominate upstream failures
_SDKS = ("python/1.8.2", "node/3.2.0", "go/0.9.1", "curl")


class Trace:
    """Builds the spans of one trace in time order. Children run one after another; the root
    span's latency covers them all."""

    def __init__(
        self,
        *,
        rng: random.Random,
        tenant: str,
        feature: str,
        start: datetime,
        id_prefix: str,
        deployment: str = "",
    ) -> None:
        spec = FEATURES[feature]
        self.rng = rng
        # A release of the feature's service being rolled out (see ``INCIDENT``): tagged on
        # every span as ``properties.deployment`` so cost can be traced back to it.
        self.deployment = deployment
        self.cursor = start
        self.events: list[Event] = []
        self._id_prefix = id_prefix
        self._trace_id = f"{rng.getrandbits(128) | 1:032x}"  # | 1: never the invalid all-zero id
        self._root_span = self._span_id()
        env = rng.random()
        environment = "prod" if env < 0.9 else "staging" if env < 0.98 else "dev"
        self._common: Event = {
            "tenant": tenant,
            "feature": feature,
            "endpoint": spec.endpoint,
            "workflow": spec.workflow,
            "team": spec.team,
            "environment": environment,
            "trace_id": self._trace_id,
        }

    def _span_id(self) -> str:
        return f"{self.rng.getrandbits(64) | 1:016x}"

    def _latency(self, median_ms: float, spread: float = 0.5) -> timedelta:
        return timedelta(microseconds=int(self.rng.lognormvariate(0, spread) * median_ms * 1000))

    def _add(self, type_: str, duration: timedelta, **attributes: Any) -> Event:
        event: Event = {
            "id": f"{self._id_prefix}-{len(self.events)}",
            "type": type_,
            "timestamp": self.cursor,
            **self._common,
            "span_id": self._span_id(),
            "parent_span_id": self._root_span,
            "latency_ms": _ms(duration),
            **attributes,
        }
        if self.deployment:
            event["properties"] = {**event.get("properties", {}), "deployment": self.deployment}
        self.events.append(event)
        self.cursor += duration + timedelta(milliseconds=self.rng.randrange(1, 15))
        return event

    def root(self, *, user: str, sdk_attempt: int = 1, **attributes: Any) -> Event:
        """The API call the partner made; call first. Its latency and status are set by
        ``finish``."""
        event: Event = {
            "id": f"{self._id_prefix}-0",
            "type": "api.call",
            "timestamp": self.cursor,
            **self._common,
            "span_id": self._root_span,
            "service": "api-gateway",
            "user": user,
            "attempt": sdk_attempt,
            "bytes_in": self.rng.randrange(300, 6000),
            "properties": {"http.request.method": "POST", "sdk": self.rng.choice(_SDKS)},
            **attributes,
        }
        self.events.append(event)
        self.cursor += timedelta(milliseconds=self.rng.randrange(2, 12))  # auth, routing
        return event

    def finish(self, root: Event, *, status_code: int = 200) -> list[Event]:
        root["status_code"] = status_code
        root["latency_ms"] = _ms(self.cursor - root["timestamp"])
        root["bytes_out"] = self.rng.randrange(200, 20000) if status_code < 400 else 120
        return self.events

    def service(self, service: str, median_ms: float, **attributes: Any) -> Event:
        """An internal service call (our own compute)."""
        return self._add(
            "service.call", self._latency(median_ms), service=service, status_code=200, **attributes
        )

    def external(self, provider: str, operation: str, *, units: int = 1) -> bool:
        """A priced third-party call, retried up to 3 attempts; False if every attempt failed."""
        price = EXTERNAL_PRICES[(provider, operation)]
        for attempt in (1, 2, 3):
            failed = self.rng.random() < 0.02
            self._add(
                "external.call",
                self._latency(250 if not failed else 900),
                service=operation,
                provider=provider,
                external=True,
                attempt=attempt,
                status_code=self.rng.choice((429, 503)) if failed else 200,
                quantity=units,
                cost=Decimal(0) if failed else price * units,
                cost_currency="USD",
            )
            if not failed:
                return True
            self.cursor += timedelta(seconds=attempt)  # backoff
        return False

    def llm(self, model: str, *, input_tokens: int, output_tokens: int, cached: int = 0) -> bool:
        """An LLM call (``cached`` prompt tokens hit the provider cache), retried on 429/5xx
        with exponential backoff up to 3 attempts; False if every attempt failed."""
        price = MODELS[model]
        for attempt in (1, 2, 3):
            status = self.rng.choice(_RETRYABLE) if self.rng.random() < 0.035 else 200
            ok = status == 200
            tokens_out = output_tokens if ok else 0
            self._add(
                "llm.call",
                self._latency(_llm_ms(input_tokens, tokens_out) if ok else 300),
                service="llm-router",
                provider=price.provider,
                model=model,
                external=price.external,
                attempt=attempt,
                status_code=status,
                input_tokens=input_tokens if ok else 0,
                output_tokens=tokens_out,
                cache_read_tokens=cached if ok else 0,
                cache_hit=ok and cached > 0,
                cost=llm_cost(
                    model=model,
                    input_tokens=input_tokens if ok else 0,
                    output_tokens=tokens_out,
                    cache_read_tokens=cached if ok else 0,
                ),
                cost_currency="USD",
                properties={"gen_ai.operation.name": "embeddings" if "embed" in model else "chat"},
            )
            if ok:
                return True
            self.cursor += timedelta(milliseconds=500 * 2**attempt + self.rng.randrange(400))
        return False

    def tool(self, name: str, median_ms: float) -> Event:
        return self._add(
            "tool.call",
            self._latency(median_ms),
            service="agent-tools",
            status_code=200,
            properties={"gen_ai.tool.name": name, "gen_ai.operation.name": "execute_tool"},
        )

    def tokens(self, median: int, spread: float = 0.6) -> int:
        return max(1, int(self.rng.lognormvariate(0, spread) * median))


def _ms(duration: timedelta) -> Decimal:
    """A duration in milliseconds with 3 decimals, exact."""
    return Decimal(duration // timedelta(microseconds=1)).scaleb(-3)


def _llm_ms(input_tokens: int, output_tokens: int) -> float:
    # Time to first token grows with the prompt; then about 60 output tokens per second.
    return 250 + input_tokens / 20 + output_tokens * 16


def _search(t: Trace, root: Event) -> int:
    if t.rng.random() < 0.2:  # the result cache answers repeat queries
        t.service("search-cache", 3, cache_hit=True)
        return 200
    t.llm("text-embedding-3-small", input_tokens=t.tokens(30, 0.4), output_tokens=0)
    t.service("vector-store", 25)
    if t.rng.random() < 0.6 and not t.external("cohere", "rerank"):
        return 502
    if t.rng.random() < 0.3:
        prompt = t.tokens(1800, 0.4)
        if not t.llm("gpt-4o-mini", input_tokens=prompt, output_tokens=t.tokens(180)):
            return 502
    return 200


def _summarize(t: Trace, root: Event) -> int:
    t.service("object-store", 40)
    model = "claude-3-5-haiku" if t.rng.random() < 0.6 else "gpt-4o-mini"
    if t.deployment:
        model = INCIDENT.model  # after the draw, so the random stream is the same either way
    chunks = 1 + int(t.rng.expovariate(0.9))
    for _ in range(min(chunks, 6)):
        if not t.llm(model, input_tokens=t.tokens(3000, 0.5), output_tokens=t.tokens(300)):
            return 502
    if chunks > 1:
        return 200 if t.llm(model, input_tokens=300 * chunks, output_tokens=t.tokens(400)) else 502
    return 200


def _chat(t: Trace, root: Event) -> int:
    model = "claude-sonnet-4" if t.rng.random() < 0.35 else "gpt-4o"
    t.service("retrieval", 35)
    system_prompt = 1200
    history = t.tokens(800)
    for turn in range(1 + min(int(t.rng.expovariate(1.2)), 3)):
        cached = system_prompt if turn > 0 or t.rng.random() < 0.5 else 0
        prompt = system_prompt + history + t.tokens(150)
        if not t.llm(model, input_tokens=prompt, output_tokens=t.tokens(220), cached=cached):
            return 502
        history += 400
        if not _chat_tool(t, t.rng.random()):
            break
    return 200


def _chat_tool(t: Trace, pick: float) -> bool:
    """The tool the model asked for after a turn, if any; False ends the conversation (no tool
    wanted, or the tool's upstream failed and the model answers without it)."""
    if pick < 0.35:
        t.tool("search_knowledge_base", 60)
    elif pick < 0.55:
        t.tool("lookup_order", 90)
        t.service("orders-api", 45)
    elif pick < 0.6:
        t.tool("create_ticket", 20)
        return t.external("zendesk", "create-ticket")
    elif pick < 0.65:
        t.tool("web_search", 20)
        return t.external("brave-search", "web-search")
    else:
        return False
    return True


def _doc_extract(t: Trace, root: Event) -> int:
    pages = 1 + int(t.rng.expovariate(0.35))
    root["quantity"] = pages
    t.service("object-store", 60)
    if not t.external("aws-textract", "detect-document-text", units=pages):
        return 502
    model = "gpt-4o" if t.rng.random() < 0.7 else "claude-sonnet-4"
    if not t.llm(model, input_tokens=900 * pages + t.tokens(500), output_tokens=t.tokens(350)):
        return 502
    t.service("schema-validator", 8)
    return 200


def _embeddings(t: Trace, root: Event) -> int:
    inputs = 1 + int(t.rng.expovariate(0.1))
    root["quantity"] = inputs
    model = "text-embedding-3-small" if t.rng.random() < 0.8 else "llama-3.1-8b-instruct"
    for _ in range(1 + inputs // 32):  # the provider takes 32 inputs per request
        if not t.llm(model, input_tokens=t.tokens(250) * min(inputs, 32), output_tokens=0):
            return 502
    return 200


def _recommend(t: Trace, root: Event) -> int:
    t.service("feature-store", 12)
    if t.rng.random() < 0.45:
        cached = 600 if t.rng.random() < 0.4 else 0
        prompt = 600 + t.tokens(400)
        if not t.llm("gemini-2.0-flash", input_tokens=prompt, output_tokens=80, cached=cached):
            return 502
    t.service("ranker", 18)
    return 200


WORKFLOWS: dict[str, Callable[[Trace, Event], int]] = {
    "search": _search,
    "summarize": _summarize,
    "chat-assistant": _chat,
    "doc-extract": _doc_extract,
    "embeddings": _embeddings,
    "recommend": _recommend,
}


def trace_events(
    *,
    rng: random.Random,
    tenant: str,
    feature: str,
    user: str,
    start: datetime,
    id_prefix: str,
    rate_limited: float,
    deployment: str = "",
) -> list[Event]:
    """The events of one API call of ``feature``, or of a rate-limited call (429) and the
    client's retries, each a trace of its own. ``deployment`` tags the call's spans with a
    release of the feature's service (and, for the incident's feature, changes its model)."""
    events: list[Event] = []
    attempt = 1
    while attempt < 3 and rng.random() < rate_limited:
        refused = Trace(
            rng=rng, tenant=tenant, feature=feature, start=start, id_prefix=f"{id_prefix}r{attempt}"
        )
        events += refused.finish(refused.root(user=user, sdk_attempt=attempt), status_code=429)
        start += timedelta(seconds=2**attempt, milliseconds=rng.randrange(1000))
        attempt += 1
    trace = Trace(
        rng=rng,
        tenant=tenant,
        feature=feature,
        start=start,
        id_prefix=id_prefix,
        deployment=deployment,
    )
    root = trace.root(user=user, sdk_attempt=attempt)
    status = WORKFLOWS[feature](trace, root)
    return events + trace.finish(root, status_code=status)
