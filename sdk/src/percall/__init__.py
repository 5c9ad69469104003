"""Percall's instrumentation SDK: meter API calls, LLM calls and tool calls of a Python service.

    import percall
    client = percall.init("https://percall.example.com", api_key="pc_...", service="search")
    with percall.context(tenant="globex", feature="summarize"):
        client.track("tool.call", endpoint="vector_search", latency_ms=12.5)

Integrations live in ``percall.integrations`` and import their framework only when used.
"""

from __future__ import annotations

from typing import Any

from percall import tenants
from percall._context import Thread, ThreadPoolExecutor, context, current, wrap
from percall._ids import traceparent_parse, uuid7
from percall.client import Percall

__all__ = [
    "Percall",
    "Thread",
    "ThreadPoolExecutor",
    "context",
    "current",
    "get_client",
    "init",
    "set_client",
    "tenants",
    "traceparent",
    "traceparent_parse",
    "track",
    "uuid7",
    "wrap",
]
__version__ = "0.1.0"

_default: Percall | None = None


def init(url: str, api_key: str, **options: Any) -> Percall:
    """Create the process's default client (the one integrations use unless given another)."""
    client = Percall(url, api_key, **options)
    set_client(client)
    return client


def set_client(client: Percall | None) -> None:
    global _default
    _default = client


def get_client() -> Percall | None:
    return _default


def track(type: str, **attributes: Any) -> None:
    """``track()`` on the default client; does nothing before ``init()``."""
    client = _default
    if client is not None:
        client.track(type, **attributes)


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to pass on by hand (e.g. to a queue)."""
    from percall._context import current_scope

    return current_scope().traceparent()
