"""ASGI middleware (Starlette, FastAPI, any ASGI app): one event per HTTP request.

    app.add_middleware(PercallMiddleware, tenant=percall.tenants.from_header("X-Tenant"))

The event has the route template as ``endpoint`` (``/items/{item_id}``, never the raw path, so
the dimension stays small), the status, latency, request and response body bytes, and the
request's span. Inside the request the tenant and trace are the current context, so events
tracked by the app and its outbound calls inherit them. No framework is imported.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from percall._context import enter_scope, exit_scope
from percall.client import Percall, type_name
from percall.integrations._inbound import request_event, request_scope
from percall.tenants import Incoming, Resolver, resolve

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


_templates: dict[tuple[int, int], str | None] = {}  # (app, route or endpoint) -> template


def _route_of(scope: Scope) -> str | None:
    """The matched route's template, mounts' prefixes included. Starlette's router (1.x) and
    FastAPI put the innermost matched route in the scope, older Starlette only its endpoint;
    either is looked up among the app's routes (once, then cached)."""
    route = scope.get("route")
    target = route if route is not None else scope.get("endpoint")
    if target is None:
        return None
    app = scope.get("app")
    key = (id(app), id(target))
    if key in _templates:
        return _templates[key]
    found = _find(getattr(app, "routes", None) or (), target, "")
    if found is None and route is not None:
        path = getattr(route, "path_format", None) or getattr(route, "path", None)
        found = path if isinstance(path, str) else None
    if len(_templates) < 10_000:
        _templates[key] = found
    return found


def _find(routes: Iterable[Any], target: Any, prefix: str) -> str | None:
    for route in routes:
        if route is target or getattr(route, "endpoint", None) is target:
            return prefix + str(getattr(route, "path_format", None) or getattr(route, "path", ""))
        children = getattr(route, "routes", None)
        if children:
            found = _find(children, target, prefix + getattr(route, "path", ""))
            if found is not None:
                return found
    return None


class PercallMiddleware:
    """``tenant`` resolves the tenant from the request (``percall.tenants``); ``client``
    defaults to ``percall.init()``'s; ``exclude`` lists paths not metered (health checks)."""

    def __init__(
        self,
        app: ASGIApp,
        client: Percall | None = None,
        tenant: Resolver | None = None,
        event_type: str = "api.call",
        exclude: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.client = client
        self.tenant = tenant
        self.event_type = event_type
        self.exclude = frozenset(exclude)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exclude:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", ())
        }
        method = scope.get("method", "GET")
        incoming = Incoming(
            headers, method, scope.get("path", ""), scope, lambda: scope.get("user")
        )
        tenant = resolve(self.tenant, incoming)
        span = request_scope(headers.get("traceparent"), tenant)
        counts: dict[str, Any] = {"in": 0, "out": 0, "status": None}

        async def counting_receive() -> Message:
            message = await receive()
            if message.get("type") == "http.request":
                counts["in"] += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            kind = message.get("type")
            if kind == "http.response.start":
                counts["status"] = message.get("status")
            elif kind == "http.response.body":
                counts["out"] += len(message.get("body", b""))
            await send(message)

        error: str | None = None
        token = enter_scope(span)
        try:
            await self.app(scope, counting_receive, counting_send)
        except BaseException as exc:
            error = type_name(exc)
            if counts["status"] is None:
                counts["status"] = 500
            raise
        finally:
            exit_scope(token)
            if tenant is None:  # authentication may have run inside the app
                tenant = resolve(self.tenant, incoming)
            request_event(
                self.client,
                span,
                event_type=self.event_type,
                method=method,
                route=_route_of(scope),
                status=counts["status"],
                latency_ms=(time.perf_counter() - started) * 1000,
                bytes_in=counts["in"],
                bytes_out=counts["out"],
                tenant=tenant,
                error=error,
            )
