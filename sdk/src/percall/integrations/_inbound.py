"""What the Django and ASGI middleware share: the request's span and its event."""

from __future__ import annotations

from typing import Any

import percall
from percall._context import Scope, current_scope
from percall._ids import span_id as new_span_id
from percall._ids import trace_id as new_trace_id
from percall._ids import traceparent_parse
from percall.client import Percall


def request_scope(traceparent: str | None, tenant: str | None) -> Scope:
    """The request's span: a child of the caller's span when a valid ``traceparent`` came in,
    else the root of a new trace. Events tracked while handling it are its children."""
    outer = current_scope()
    attributes = outer.attributes
    if tenant is not None:
        attributes = {**attributes, "tenant": tenant}
    incoming = traceparent_parse(traceparent)
    if incoming is None:
        return Scope(attributes, new_trace_id(), new_span_id(), None)
    return Scope(attributes, incoming[0], new_span_id(), incoming[1])


def request_event(
    client: Percall | None,
    scope: Scope,
    *,
    event_type: str,
    method: str,
    route: str | None,
    status: int | None,
    latency_ms: float,
    bytes_in: int | None,
    bytes_out: int | None,
    tenant: str | None,
    error: str | None,
) -> None:
    client = client or percall.get_client()
    if client is None:
        return
    attributes: dict[str, Any] = {
        "trace_id": scope.trace_id,
        "span_id": scope.span_id,
        "parent_span_id": scope.parent_span_id,
        "endpoint": route,
        "status_code": status,
        "latency_ms": latency_ms,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "http.request.method": method,
    }
    if tenant is not None:
        attributes["tenant"] = tenant
    if error is not None:
        attributes["error.type"] = error
    # Tracked in the request's own scope so the context's attributes apply to it too.
    token = percall._context.enter_scope(scope)
    try:
        client.track(event_type, **attributes)
    finally:
        percall._context.exit_scope(token)
