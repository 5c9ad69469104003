"""Outbound httpx calls: one event per attempt (``external=true``), ``traceparent`` sent on.

Two ways in:

    http = httpx.Client(transport=PercallTransport())           # every attempt, errors too
    http = httpx.AsyncClient(transport=AsyncPercallTransport())
    instrument(existing_client)                                  # event hooks on a client

The transport sees connection errors and timeouts (no response); the event hooks, httpx's public
way into a client made elsewhere, see only attempts that got a response.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from percall.client import Percall, type_name
from percall.integrations._outbound import Call, Outbound, content_length

__all__ = ["AsyncPercallTransport", "PercallTransport", "instrument"]


def _body(request: httpx.Request) -> bytes | None:
    try:
        return request.content
    except httpx.RequestNotRead:  # a streamed upload: no fingerprint, no size
        return None


def _start(out: Outbound, request: httpx.Request) -> Call:
    return out.start(
        request.method,
        str(request.url),
        request.headers,
        _body(request),
        request.headers.get("x-stainless-retry-count"),
    )


def _bytes_out(request: httpx.Request) -> int | None:
    return content_length(request.headers)


class PercallTransport(httpx.BaseTransport):
    """Wraps a transport (default ``httpx.HTTPTransport()``) and meters every attempt."""

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        client: Percall | None = None,
        providers: Mapping[str, str] | None = None,
        route: Callable[[str], str] | None = None,
    ) -> None:
        self._transport = transport or httpx.HTTPTransport()
        self._out = Outbound(client, providers, route)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        call = _start(self._out, request)
        try:
            response = self._transport.handle_request(request)
        except Exception as exc:
            self._out.finish(
                call,
                status=None,
                error=type_name(exc),
                bytes_in=None,
                bytes_out=_bytes_out(request),
            )
            raise
        self._out.finish(
            call,
            status=response.status_code,
            error=None,
            bytes_in=content_length(response.headers),
            bytes_out=_bytes_out(request),
        )
        return response

    def close(self) -> None:
        self._transport.close()


class AsyncPercallTransport(httpx.AsyncBaseTransport):
    """``PercallTransport`` for ``httpx.AsyncClient``."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        client: Percall | None = None,
        providers: Mapping[str, str] | None = None,
        route: Callable[[str], str] | None = None,
    ) -> None:
        self._transport = transport or httpx.AsyncHTTPTransport()
        self._out = Outbound(client, providers, route)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = _start(self._out, request)
        try:
            response = await self._transport.handle_async_request(request)
        except Exception as exc:
            self._out.finish(
                call,
                status=None,
                error=type_name(exc),
                bytes_in=None,
                bytes_out=_bytes_out(request),
            )
            raise
        self._out.finish(
            call,
            status=response.status_code,
            error=None,
            bytes_in=content_length(response.headers),
            bytes_out=_bytes_out(request),
        )
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()


def instrument(
    http: httpx.Client | httpx.AsyncClient,
    *,
    client: Percall | None = None,
    providers: Mapping[str, str] | None = None,
    route: Callable[[str], str] | None = None,
) -> httpx.Client | httpx.AsyncClient:
    """Add request and response event hooks to an existing client; returns it."""
    out = Outbound(client, providers, route)
    calls: weakref.WeakKeyDictionary[httpx.Request, Call] = weakref.WeakKeyDictionary()

    def on_request(request: httpx.Request) -> None:
        calls[request] = _start(out, request)

    def on_response(response: httpx.Response) -> None:
        call = calls.pop(response.request, None)
        if call is not None:
            out.finish(
                call,
                status=response.status_code,
                error=None,
                bytes_in=content_length(response.headers),
                bytes_out=_bytes_out(response.request),
            )

    hooks: dict[str, list[Any]] = {"request": [], "response": []}
    if isinstance(http, httpx.AsyncClient):

        async def async_request(request: httpx.Request) -> None:
            on_request(request)

        async def async_response(response: httpx.Response) -> None:
            on_response(response)

        hooks = {"request": [async_request], "response": [async_response]}
    else:
        hooks = {"request": [on_request], "response": [on_response]}
    http.event_hooks = {
        "request": [*http.event_hooks.get("request", []), *hooks["request"]],
        "response": [*http.event_hooks.get("response", []), *hooks["response"]],
    }
    return http
