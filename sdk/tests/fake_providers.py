"""Small stand-ins for the OpenAI and Anthropic clients, shaped like the real ones: resources
with a ``create`` method returning attribute objects (their pydantic models) built from recorded
responses, or a stream of chunks when ``stream=True``; an error carries ``status_code``."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

RECORDED = Path(__file__).parent / "recorded"


def model_of(value: Any) -> Any:
    if isinstance(value, dict):
        return SimpleNamespace(**{k: model_of(v) for k, v in value.items()})
    if isinstance(value, list):
        return [model_of(v) for v in value]
    return value


def recorded(name: str) -> Any:
    path = RECORDED / name
    if path.suffix == ".jsonl":
        return [model_of(json.loads(line)) for line in path.read_text().splitlines() if line]
    return model_of(json.loads(path.read_text()))


class APIStatusError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class Stream:
    """Like the SDKs' ``Stream``: iterable, closable, a context manager."""

    def __init__(self, chunks: list[Any]) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self):
        yield from self.chunks

    def close(self) -> None:
        self.closed = True


class AsyncStream(Stream):
    async def __aiter__(self):
        for chunk in self.chunks:
            yield chunk

    async def close(self) -> None:  # type: ignore[override]
        self.closed = True


class Resource:
    def __init__(self, response: str, stream: str | None = None) -> None:
        self.response, self.stream_file = response, stream
        self.calls: list[dict[str, Any]] = []
        self.fail_with: int | None = None

    def create(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if self.fail_with:
            raise APIStatusError(self.fail_with)
        if kwargs.get("stream"):
            return Stream(recorded(self.stream_file))
        return recorded(self.response)

    def stream(self, **kwargs: Any) -> StreamManager:
        return StreamManager(self, kwargs)


class MessageStream:
    """Like Anthropic's ``MessageStream``: iterable, accumulating a message snapshot."""

    def __init__(self, events: list[Any], final: Any) -> None:
        self.events, self.final, self.snapshot = events, final, None

    def __iter__(self):
        for event in self.events:
            self.snapshot = self.final
            yield event

    @property
    def current_message_snapshot(self) -> Any:
        assert self.snapshot is not None
        return self.snapshot


class StreamManager:
    def __init__(self, resource: Resource, kwargs: dict[str, Any]) -> None:
        self.resource, self.kwargs, self.exited = resource, kwargs, False

    def __enter__(self) -> MessageStream:
        self.resource.calls.append(self.kwargs)
        if self.resource.fail_with:
            raise APIStatusError(self.resource.fail_with)
        return MessageStream(recorded(self.resource.stream_file), recorded(self.resource.response))

    def __exit__(self, *exc: Any) -> None:
        self.exited = True

    async def __aenter__(self) -> MessageStream:
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.exited = True


class AsyncResource(Resource):
    async def create(self, **kwargs: Any) -> Any:  # type: ignore[override]
        result = Resource.create(self, **kwargs)
        return AsyncStream(result.chunks) if isinstance(result, Stream) else result


def fake_openai(async_: bool = False) -> Any:
    kind = AsyncResource if async_ else Resource
    return SimpleNamespace(
        chat=SimpleNamespace(completions=kind("openai_chat.json", "openai_chat_stream.jsonl")),
        responses=kind("openai_responses.json", "openai_responses_stream.jsonl"),
        embeddings=kind("openai_chat.json"),
    )


def fake_anthropic(async_: bool = False) -> Any:
    kind = AsyncResource if async_ else Resource
    return SimpleNamespace(messages=kind("anthropic_message.json", "anthropic_stream.jsonl"))
