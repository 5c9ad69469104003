"""What the httpx and requests integrations share: one event per outbound attempt.

Each attempt is a child span of the current one (a new trace when there is none), and its
``traceparent`` is sent on, so the service called can report its own calls into the same trace.

Attempt numbers: OpenAI's and Anthropic's SDKs number their own retries in the
``x-stainless-retry-count`` header; urllib3's retries (requests) are read from the response's
retry history; otherwise a request that repeats, within five minutes and in the same trace, one
that failed (a network error, 429 or 5xx) with the same method, URL and body is its next attempt.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import percall
from percall._context import current_scope
from percall._ids import traceparent_format
from percall.client import Percall

# Host (or a suffix after a dot) -> provider, as the price book names them.
PROVIDERS: dict[str, str] = {
    "api.openai.com": "openai",
    "openai.azure.com": "azure-openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "google",
    "api.mistral.ai": "mistral",
    "api.cohere.com": "cohere",
    "api.groq.com": "groq",
    "api.together.xyz": "together",
    "api.stripe.com": "stripe",
    "api.twilio.com": "twilio",
    "api.sendgrid.com": "sendgrid",
}
_RETRY_WINDOW = 300.0  # seconds a failed request is remembered
_REMEMBERED = 2048  # failed requests remembered at most
_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,}|[A-Za-z]{1,10}_(?=[A-Za-z]*\d)[A-Za-z0-9]{8,}|(?=\D*\d)[A-Za-z0-9_-]{24,})$"
)


def default_route(path: str) -> str:
    """The path with id-like segments (numbers, UUIDs, long hex or tokens) as ``{id}``, so the
    endpoint dimension stays small: ``/v1/charges/ch_3N...`` -> ``/v1/charges/{id}``."""
    return "/".join("{id}" if _ID_SEGMENT.match(part) else part for part in path.split("/"))


@dataclass(slots=True)
class Call:
    """One outbound attempt in flight."""

    attempt: int
    host: str
    key: tuple[Any, ...]
    method: str
    parent: str | None
    path: str
    span: str
    started: float
    trace: str


class Outbound:
    """``providers`` extends the host map; ``route(path)`` names the endpoint (default: ids
    replaced by ``{id}``); ``event_type`` is the events' type."""

    def __init__(
        self,
        client: Percall | None = None,
        providers: Mapping[str, str] | None = None,
        route: Callable[[str], str] | None = None,
        event_type: str = "http.call",
    ) -> None:
        self.client = client
        self.providers = {**PROVIDERS, **(providers or {})}
        self.route = route or default_route
        self.event_type = event_type
        self._failed: OrderedDict[tuple[Any, ...], tuple[int, float]] = OrderedDict()

    def provider(self, host: str) -> str:
        name = host
        while True:
            if name in self.providers:
                return self.providers[name]
            if "." not in name:
                return host
            name = name.split(".", 1)[1]

    def start(
        self, method: str, url: str, headers: Any, body: bytes | None, retry_count: str | None
    ) -> Call:
        """Open the attempt's span and set ``traceparent`` on ``headers`` (a mutable mapping)."""
        scope = current_scope()
        trace, span, parent = scope.child()
        headers["traceparent"] = traceparent_format(trace, span)
        parts = urlsplit(url)
        digest = hashlib.blake2b(body, digest_size=8).digest() if body else b""
        key = (scope.trace_id, method, url, digest)
        if retry_count is not None and retry_count.isdigit():
            attempt = int(retry_count) + 1
        else:
            previous = self._failed.get(key)
            fresh = previous is not None and time.monotonic() - previous[1] < _RETRY_WINDOW
            attempt = previous[0] + 1 if previous is not None and fresh else 1
        return Call(
            attempt=attempt,
            host=parts.hostname or "",
            key=key,
            method=method,
            parent=parent,
            path=parts.path or "/",
            span=span,
            started=time.perf_counter(),
            trace=trace,
        )

    def finish(
        self,
        call: Call,
        *,
        status: int | None,
        error: str | None,
        bytes_in: int | None,
        bytes_out: int | None,
        attempt: int | None = None,
        timed: bool = True,
        span: str | None = None,
    ) -> None:
        attempt = attempt or call.attempt
        if error is not None or status is None or status == 429 or status >= 500:
            self._failed[call.key] = (attempt, time.monotonic())
            self._failed.move_to_end(call.key)
            while len(self._failed) > _REMEMBERED:
                self._failed.popitem(last=False)
        else:
            self._failed.pop(call.key, None)
        client = self.client or percall.get_client()
        if client is None:
            return
        extra: dict[str, Any] = {"http.request.method": call.method, "server.address": call.host}
        if error is not None:
            extra["error.type"] = error
        client.track(
            self.event_type,
            trace_id=call.trace,
            span_id=span or call.span,
            parent_span_id=call.parent,
            external=True,
            provider=self.provider(call.host),
            endpoint=self.route(call.path),
            status_code=status,
            attempt=attempt,
            latency_ms=(time.perf_counter() - call.started) * 1000 if timed else None,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            **extra,
        )


def content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length")
    return int(value) if value and value.isdigit() else None
