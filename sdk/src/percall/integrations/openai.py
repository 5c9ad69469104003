"""OpenAI client wrapper: one ``llm.call`` event per call with the served model and tokens.

    from openai import OpenAI, AsyncOpenAI
    client = instrument(OpenAI())          # or AsyncOpenAI(); returns the same client

Metered: ``chat.completions.create``, ``responses.create`` and ``embeddings.create``, streamed or
not. A streamed chat completion reports usage only when asked
(``stream_options={"include_usage": True}``), in its final chunk, whose ``choices`` is empty;
``instrument(client, stream_usage=True)`` asks for it on every streamed call that does not set
``stream_options`` itself. The ``openai`` package is not imported.

Tokens: ``prompt_tokens`` / ``input_tokens`` (cached tokens included, as OpenAI counts them),
``completion_tokens`` / ``output_tokens`` (reasoning included), ``cached_tokens`` as cache reads,
``reasoning_tokens``.
"""

from __future__ import annotations

from typing import Any

from percall.client import Percall
from percall.integrations._llm import LLMWrapper, Usage, field, whole

__all__ = ["instrument", "usage_of"]


def usage_of(usage: Any) -> Usage | None:
    """Token counts from a chat-completions, responses or embeddings ``usage`` object."""
    if usage is None:
        return None
    input_tokens = whole(field(usage, "input_tokens"))
    if input_tokens is None:
        input_tokens = whole(field(usage, "prompt_tokens"))
    output_tokens = whole(field(usage, "output_tokens"))
    if output_tokens is None:
        output_tokens = whole(field(usage, "completion_tokens"))
    input_details = field(usage, "input_tokens_details") or field(usage, "prompt_tokens_details")
    output_details = field(usage, "output_tokens_details") or field(
        usage, "completion_tokens_details"
    )
    counts = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": whole(field(input_details, "cached_tokens")),
        "reasoning_tokens": whole(field(output_details, "reasoning_tokens")),
    }
    return {k: v for k, v in counts.items() if v is not None}


class _OpenAI(LLMWrapper):
    provider = "openai"

    def __init__(self, client: Percall | None, event_type: str, stream_usage: bool) -> None:
        super().__init__(client, event_type)
        self.stream_usage = stream_usage

    def read(self, response: Any) -> tuple[str | None, Usage | None]:
        return field(response, "model"), usage_of(field(response, "usage"))

    def chunk(self, item: Any) -> tuple[str | None, Usage | None]:
        # Chat: every chunk has the model, the last one the usage. Responses: the
        # ``response.completed`` event carries the whole response.
        response = field(item, "response")
        if response is not None and field(item, "type") in (
            "response.completed",
            "response.incomplete",
            "response.failed",
        ):
            return field(response, "model"), usage_of(field(response, "usage"))
        return field(item, "model"), usage_of(field(item, "usage"))

    def prepare(self, kwargs: dict[str, Any]) -> None:
        # Chat completions only (they have ``messages``): responses streams carry usage.
        asked = self.stream_usage and kwargs.get("stream") and "messages" in kwargs
        if asked and "stream_options" not in kwargs:
            kwargs["stream_options"] = {"include_usage": True}


def instrument(
    openai_client: Any,
    *,
    client: Percall | None = None,
    event_type: str = "llm.call",
    stream_usage: bool = False,
) -> Any:
    """Meter an ``OpenAI`` or ``AsyncOpenAI`` client in place; returns it."""
    wrapper = _OpenAI(client, event_type, stream_usage)
    chat = getattr(openai_client, "chat", None)
    if chat is not None and getattr(chat, "completions", None) is not None:
        wrapper.patch(chat.completions, "create", "chat")
    if getattr(openai_client, "responses", None) is not None:
        wrapper.patch(openai_client.responses, "create", "chat")
    if getattr(openai_client, "embeddings", None) is not None:
        wrapper.patch(openai_client.embeddings, "create", "embeddings")
    return openai_client
