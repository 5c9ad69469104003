"""Outbound ``requests`` calls: one event per attempt (``external=true``), ``traceparent`` sent.

    session = instrument(requests.Session())

Every adapter mounted on the session when ``instrument`` runs is wrapped (mount yours first).
Retries that urllib3 makes inside one ``send`` (``HTTPAdapter(max_retries=Retry(...))``) are
read from the response's retry history: each failed attempt is an event of its own, numbered,
and the final answer's attempt number counts them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import requests
from requests.adapters import BaseAdapter

from percall._ids import span_id as new_span_id
from percall.client import Percall, type_name
from percall.integrations._outbound import Outbound, content_length

__all__ = ["PercallAdapter", "instrument"]


def _body(request: requests.PreparedRequest) -> bytes | None:
    body = request.body
    if isinstance(body, str):
        return body.encode()
    return body if isinstance(body, bytes) else None


def _text(value: str | bytes | None) -> str | None:
    return value.decode("latin-1") if isinstance(value, bytes) else value


class PercallAdapter(BaseAdapter):
    """Wraps an adapter (``requests.adapters.HTTPAdapter`` by default) and meters its sends."""

    def __init__(self, adapter: BaseAdapter | None = None, outbound: Outbound | None = None):
        super().__init__()
        self.adapter = adapter or requests.adapters.HTTPAdapter()
        self.outbound = outbound or Outbound()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        body = _body(request)
        out = self.outbound
        call = out.start(
            request.method or "GET",
            request.url or "",
            request.headers,
            body,
            _text(request.headers.get("x-stainless-retry-count")),
        )
        sent = len(body) if body is not None else None
        try:
            response = self.adapter.send(request, *args, **kwargs)
        except Exception as exc:
            out.finish(call, status=None, error=type_name(exc), bytes_in=None, bytes_out=sent)
            raise
        history = getattr(getattr(response.raw, "retries", None), "history", ()) or ()
        failed = [h for h in history if not h.redirect_location]
        for offset, attempt in enumerate(failed):
            out.finish(
                call,
                status=attempt.status,
                error=type_name(attempt.error) if attempt.error is not None else None,
                bytes_in=None,
                bytes_out=sent,
                attempt=call.attempt + offset,
                timed=False,  # urllib3 keeps no time per attempt
                span=new_span_id(),
            )
        out.finish(
            call,
            status=response.status_code,
            error=None,
            bytes_in=content_length(response.headers),
            bytes_out=sent,
            attempt=call.attempt + len(failed),
        )
        return response

    def close(self) -> None:
        self.adapter.close()


def instrument(
    session: requests.Session,
    *,
    client: Percall | None = None,
    providers: Mapping[str, str] | None = None,
    route: Callable[[str], str] | None = None,
) -> requests.Session:
    """Wrap every adapter mounted on ``session``; returns it."""
    outbound = Outbound(client, providers, route)
    for prefix, adapter in list(session.adapters.items()):
        if not isinstance(adapter, PercallAdapter):
            session.mount(prefix, PercallAdapter(adapter, outbound))
    return session
