"""What the OpenAI and Anthropic wrappers share: wrap a client's method so each call is one
``llm.call`` event with the model served and the token usage, sync or async, streamed or not.

Token counts follow OpenTelemetry (as Percall's price book does): ``input_tokens`` includes
cache reads and writes, ``output_tokens`` includes reasoning tokens. The provider SDKs are never
imported: responses are read by attribute (their pydantic models) or by key (plain dicts).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Any

import percall
from percall._context import current_scope
from percall.client import Percall, type_name

Usage = dict[str, int]


def field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Observer:
    """Collects what one call's response (or stream of chunks) says; ``read`` and ``chunk`` are
    the provider's parsers, each returning (model, usage) found in one object."""

    def __init__(
        self,
        wrapper: LLMWrapper,
        operation: str,
        requested: str | None,
        started: float,
        scope_ids: tuple[str, str, str | None],
    ) -> None:
        self.wrapper = wrapper
        self.operation = operation
        self.requested = requested
        self.started = started
        self.ids = scope_ids
        self.model: str | None = None
        self.usage: Usage = {}
        self.done = False

    def take(self, model: str | None, usage: Usage | None) -> None:
        if model:
            self.model = model
        if usage:
            self.usage.update({k: v for k, v in usage.items() if v is not None})

    def finish(self, status: int | None, error: str | None) -> None:
        if self.done:
            return
        self.done = True
        w = self.wrapper
        client = w.client or percall.get_client()
        if client is None:
            return
        trace, span, parent = self.ids
        extra: dict[str, Any] = {"gen_ai.operation.name": self.operation}
        if self.requested:
            extra["gen_ai.request.model"] = self.requested
        if error is not None:
            extra["error.type"] = error
        client.track(
            w.event_type,
            trace_id=trace,
            span_id=span,
            parent_span_id=parent,
            external=True,
            provider=w.provider,
            model=self.model or self.requested,
            latency_ms=(time.perf_counter() - self.started) * 1000,
            status_code=status,
            **w.finalize(self.usage),
            **extra,
        )


def _error_status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) and 100 <= status <= 599 else None


class _Stream:
    """Passes a provider's stream through, observing each chunk; the event is sent when the
    stream ends, is closed, or fails."""

    def __init__(self, inner: Any, observer: Observer, chunk: Callable[[Any], Any]) -> None:
        self._inner = inner
        self._observer = observer
        self._chunk = chunk
        self._iterator: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _see(self, item: Any) -> None:
        try:
            self._observer.take(*self._chunk(item))
        except Exception:  # a chunk we cannot read never breaks the caller's stream
            return

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = iter(self._inner)
        try:
            item = next(self._iterator)
        except StopIteration:
            self._observer.finish(200, None)
            raise
        except Exception as exc:
            self._observer.finish(_error_status(exc), type_name(exc))
            raise
        self._see(item)
        return item

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._inner.__aiter__()
        try:
            item = await self._iterator.__anext__()
        except StopAsyncIteration:
            self._observer.finish(200, None)
            raise
        except Exception as exc:
            self._observer.finish(_error_status(exc), type_name(exc))
            raise
        self._see(item)
        return item

    def close(self) -> None:
        self._observer.finish(200, None)
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
        self._observer.finish(200, None)
        close = getattr(self._inner, "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> _Stream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class _StreamManager:
    """Passes a provider's stream manager through (Anthropic's ``messages.stream()``): the
    call starts when the block is entered, and when it is left the accumulated message (its
    ``current_message_snapshot``) gives the model and the usage."""

    def __init__(self, inner: Any, begin: Callable[[], Observer], read: Callable[[Any], Any]):
        self._inner = inner
        self._begin = begin
        self._read = read
        self._observer: Observer | None = None
        self._stream: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _opened(self, stream: Any) -> Any:
        self._stream = stream
        return stream

    def _failed(self, exc: BaseException) -> None:
        if self._observer is not None:
            self._observer.finish(_error_status(exc), type_name(exc))

    def _closing(self, exc: BaseException | None) -> None:
        observer = self._observer
        if observer is None:
            return
        try:
            snapshot = self._stream.current_message_snapshot
        except Exception:  # nothing accumulated (it failed before message_start)
            snapshot = None
        if snapshot is not None:
            observer.take(*self._read(snapshot))
        if exc is None:
            observer.finish(200, None)
        else:
            observer.finish(_error_status(exc), type_name(exc))

    def __enter__(self) -> Any:
        self._observer = self._begin()
        try:
            return self._opened(self._inner.__enter__())
        except Exception as exc:
            self._failed(exc)
            raise

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> Any:
        self._closing(exc)
        return self._inner.__exit__(kind, exc, tb)

    async def __aenter__(self) -> Any:
        self._observer = self._begin()
        try:
            return self._opened(await self._inner.__aenter__())
        except Exception as exc:
            self._failed(exc)
            raise

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> Any:
        self._closing(exc)
        return await self._inner.__aexit__(kind, exc, tb)


class LLMWrapper:
    """Wraps methods of one provider's client. ``read(response)`` and ``chunk(item)`` return
    (model, usage); ``finalize(usage)`` turns the collected usage into event attributes."""

    provider = ""
    event_type = "llm.call"

    def __init__(self, client: Percall | None, event_type: str = "llm.call") -> None:
        self.client = client
        self.event_type = event_type

    def read(self, response: Any) -> tuple[str | None, Usage | None]:
        raise NotImplementedError

    def chunk(self, item: Any) -> tuple[str | None, Usage | None]:
        raise NotImplementedError

    def finalize(self, usage: Usage) -> dict[str, Any]:
        return dict(usage)

    def prepare(self, kwargs: dict[str, Any]) -> None:
        """Adjust a call's arguments before it is made (e.g. ask for usage in streams)."""

    def _begin(self, operation: str, kwargs: dict[str, Any]) -> Observer:
        self.prepare(kwargs)
        model = kwargs.get("model")
        return Observer(
            self,
            operation,
            model if isinstance(model, str) else None,
            time.perf_counter(),
            current_scope().child(),
        )

    def patch_stream_manager(self, owner: Any, name: str, operation: str) -> None:
        """Replace ``owner.name``, a method returning a stream context manager, by one whose
        manager meters the call made inside the ``with`` block."""
        method = getattr(owner, name, None)
        if method is None or getattr(method, "_percall", False):
            return
        wrapper = self

        @functools.wraps(method)
        def metered(*args: Any, **kwargs: Any) -> Any:
            inner = method(*args, **kwargs)
            return _StreamManager(inner, lambda: wrapper._begin(operation, kwargs), wrapper.read)

        metered._percall = True  # type: ignore[attr-defined]
        setattr(owner, name, metered)

    def patch(self, owner: Any, name: str, operation: str) -> None:
        """Replace ``owner.name`` (a bound method of the provider's client) by a metered one."""
        method = getattr(owner, name, None)
        if method is None or getattr(method, "_percall", False):
            return
        wrapper = self

        def begin(kwargs: dict[str, Any]) -> Observer:
            return wrapper._begin(operation, kwargs)

        def end(observer: Observer, response: Any, stream: bool) -> Any:
            if stream:
                return _Stream(response, observer, wrapper.chunk)
            try:
                observer.take(*wrapper.read(response))
            finally:
                observer.finish(200, None)
            return response

        if inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def metered_async(*args: Any, **kwargs: Any) -> Any:
                observer = begin(kwargs)
                try:
                    response = await method(*args, **kwargs)
                except Exception as exc:
                    observer.finish(_error_status(exc), type_name(exc))
                    raise
                return end(observer, response, bool(kwargs.get("stream")))

            metered_async._percall = True  # type: ignore[attr-defined]
            setattr(owner, name, metered_async)
        else:

            @functools.wraps(method)
            def metered(*args: Any, **kwargs: Any) -> Any:
                observer = begin(kwargs)
                try:
                    response = method(*args, **kwargs)
                except Exception as exc:
                    observer.finish(_error_status(exc), type_name(exc))
                    raise
                return end(observer, response, bool(kwargs.get("stream")))

            metered._percall = True  # type: ignore[attr-defined]
            setattr(owner, name, metered)
