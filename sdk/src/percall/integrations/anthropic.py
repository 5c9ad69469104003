"""Anthropic client wrapper: one ``llm.call`` event per ``messages.create`` or
``messages.stream`` call.

    from anthropic import Anthropic, AsyncAnthropic
    client = instrument(Anthropic())       # or AsyncAnthropic(); returns the same client

``messages.stream()`` (the SDK's helper, a context manager) is metered when its block is
left, from the message it accumulated. Streamed calls (``stream=True``) are read as they
pass: ``message_start`` carries the model and the input side of the usage, each
``message_delta`` the output tokens so far (cumulative), so the last one seen is the total.
The ``anthropic`` package is not imported.

Tokens: Anthropic's ``input_tokens`` excludes cached input, so the event's ``input_tokens`` is
``input_tokens + cache_read_input_tokens + cache_creation_input_tokens`` (OpenTelemetry's and
Percall's convention: cache reads and writes are part of the input).
"""

from __future__ import annotations

from typing import Any

from percall.client import Percall
from percall.integrations._llm import LLMWrapper, Usage, field, whole

__all__ = ["instrument", "usage_of"]


def usage_of(usage: Any) -> Usage | None:
    """Anthropic's usage fields as they came (``finalize`` adds the cache into the input)."""
    if usage is None:
        return None
    counts = {
        "uncached_input_tokens": whole(field(usage, "input_tokens")),
        "output_tokens": whole(field(usage, "output_tokens")),
        "cache_read_tokens": whole(field(usage, "cache_read_input_tokens")),
        "cache_write_tokens": whole(field(usage, "cache_creation_input_tokens")),
    }
    return {k: v for k, v in counts.items() if v is not None}


class _Anthropic(LLMWrapper):
    provider = "anthropic"

    def read(self, response: Any) -> tuple[str | None, Usage | None]:
        return field(response, "model"), usage_of(field(response, "usage"))

    def chunk(self, item: Any) -> tuple[str | None, Usage | None]:
        kind = field(item, "type")
        if kind == "message_start":
            message = field(item, "message")
            return field(message, "model"), usage_of(field(message, "usage"))
        if kind == "message_delta":
            return None, usage_of(field(item, "usage"))
        return None, None

    def finalize(self, usage: Usage) -> dict[str, Any]:
        out = dict(usage)
        uncached = out.pop("uncached_input_tokens", None)
        if uncached is not None:
            out["input_tokens"] = (
                uncached + out.get("cache_read_tokens", 0) + out.get("cache_write_tokens", 0)
            )
        return out


def instrument(
    anthropic_client: Any, *, client: Percall | None = None, event_type: str = "llm.call"
) -> Any:
    """Meter an ``Anthropic`` or ``AsyncAnthropic`` client in place; returns it."""
    messages = getattr(anthropic_client, "messages", None)
    if messages is not None:
        wrapper = _Anthropic(client, event_type)
        wrapper.patch(messages, "create", "chat")
        wrapper.patch_stream_manager(messages, "stream", "chat")
    return anthropic_client
