"""The attribution context (tenant, feature, workflow, team, user, ...) and the current span.

One ``ContextVar`` holds an immutable ``Scope``. ``track()`` reads it once and keeps the reference
in the queued event: no copy on the caller's path; the attributes are merged when the batch is
built on the flush thread.

asyncio tasks copy the context when they are created, so they inherit it. Plain threads do not
(``threading.Thread`` starts with an empty context): use ``percall.Thread``, ``percall.wrap(fn)``
or ``percall.ThreadPoolExecutor``, which run the target in a copy of the caller's context.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from percall._ids import span_id as new_span_id
from percall._ids import trace_id as new_trace_id
from percall._ids import traceparent_format, traceparent_parse

T = TypeVar("T")


class Scope:
    """What every event inside a ``context()`` block inherits. Never mutated: a nested block
    makes a new one."""

    __slots__ = ("attributes", "parent_span_id", "span_id", "trace_id")

    def __init__(
        self,
        attributes: dict[str, Any],
        trace_id: str | None = None,
        span_id: str | None = None,
        parent_span_id: str | None = None,
    ) -> None:
        self.attributes = attributes
        self.trace_id = trace_id
        self.span_id = span_id  # the current span: events tracked inside are its children
        self.parent_span_id = parent_span_id  # the current span's own parent, if any

    def child(self) -> tuple[str, str, str | None]:
        """(trace_id, span_id, parent_span_id) for a new span under the current one; a new
        trace (a root span) when there is none."""
        if self.trace_id is None:
            return new_trace_id(), new_span_id(), None
        return self.trace_id, new_span_id(), self.span_id

    def traceparent(self) -> str | None:
        if self.trace_id is None or self.span_id is None:
            return None
        return traceparent_format(self.trace_id, self.span_id)


EMPTY = Scope({})
_SCOPE: contextvars.ContextVar[Scope] = contextvars.ContextVar("percall_scope", default=EMPTY)
current_scope = _SCOPE.get


def current() -> dict[str, Any]:
    """The attributes and trace ids events would inherit here (a copy, for inspection)."""
    scope = _SCOPE.get()
    out = dict(scope.attributes)
    for name in ("trace_id", "span_id", "parent_span_id"):
        value = getattr(scope, name)
        if value is not None:
            out[name] = value
    return out


class context:
    """Attributes for every event inside the block (and the threads and tasks it starts through
    percall's helpers). ``None`` values are ignored, so a missing tenant does not clear the outer
    one. ``traceparent`` (an incoming W3C header) makes the block a span of that trace;
    ``new_span=True`` opens a child span of the current one (or a new trace)."""

    __slots__ = ("_scope", "_token")

    def __init__(
        self,
        *,
        tenant: str | None = None,
        feature: str | None = None,
        workflow: str | None = None,
        team: str | None = None,
        user: str | None = None,
        traceparent: str | None = None,
        new_span: bool = False,
        **attributes: Any,
    ) -> None:
        outer = _SCOPE.get()
        merged = dict(outer.attributes)
        for name, value in (
            ("tenant", tenant),
            ("feature", feature),
            ("workflow", workflow),
            ("team", team),
            ("user", user),
            *attributes.items(),
        ):
            if value is not None:
                merged[name] = value
        trace, span, parent = outer.trace_id, outer.span_id, outer.parent_span_id
        incoming = traceparent_parse(traceparent)
        if incoming is not None:
            trace, span, parent = incoming[0], new_span_id(), incoming[1]
        elif new_span or traceparent is not None:
            trace, span, parent = outer.child()
        self._scope = Scope(merged, trace, span, parent)
        self._token: contextvars.Token[Scope] | None = None

    @property
    def scope(self) -> Scope:
        return self._scope

    def __enter__(self) -> Scope:
        self._token = _SCOPE.set(self._scope)
        return self._scope

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _SCOPE.reset(self._token)
            self._token = None

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


def enter_scope(scope: Scope) -> contextvars.Token[Scope]:
    """Make ``scope`` current (integrations: middleware that sets and resets it itself)."""
    return _SCOPE.set(scope)


def exit_scope(token: contextvars.Token[Scope]) -> None:
    _SCOPE.reset(token)


def wrap(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` bound to a copy of the caller's context: wherever it runs (a thread, a pool, a
    callback), events it tracks inherit the attributes and trace current here."""
    ctx = contextvars.copy_context()

    def run(*args: Any, **kwargs: Any) -> T:
        return ctx.run(fn, *args, **kwargs)

    run.__wrapped__ = fn  # type: ignore[attr-defined]
    return run


class Thread(threading.Thread):
    """``threading.Thread`` whose target runs in a copy of the context of the thread that
    created it (a plain Thread starts with an empty one)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._percall_context = contextvars.copy_context()

    def run(self) -> None:
        self._percall_context.run(super().run)


class ThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in a copy of the submitter's context."""

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        ctx = contextvars.copy_context()
        return super().submit(ctx.run, fn, *args, **kwargs)
