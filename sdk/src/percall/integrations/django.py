"""Django middleware: one event per request.

    MIDDLEWARE = [..., "django.contrib.auth.middleware.AuthenticationMiddleware",
                  "percall.integrations.django.PercallMiddleware", ...]
    PERCALL = {"url": "https://percall.example.com", "api_key": env("PERCALL_API_KEY"),
               "tenant": "myapp.metering.tenant_of",   # or a callable; see percall.tenants
               "service": "api"}

The event has the URL pattern as ``endpoint`` (``/items/<int:pk>``), the status, latency, bytes
in (``Content-Length``) and out, and the request's span. Without ``url`` in ``PERCALL`` the
client made by ``percall.init()`` is used. Django is imported only by this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

import percall
from percall._context import enter_scope, exit_scope
from percall.client import Percall, type_name
from percall.integrations._inbound import request_event, request_scope
from percall.tenants import Incoming, Resolver, from_header, resolve


def _resolver(value: Any) -> Resolver | None:
    if value is None or callable(value):
        return value
    if isinstance(value, str) and value.startswith("header:"):
        return from_header(value.split(":", 1)[1])
    resolver: Resolver = import_string(value)
    return resolver


def _route_of(request: HttpRequest) -> str | None:
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if not route:
        return None
    return route if route.startswith("/") else f"/{route}"


def _bytes_out(response: HttpResponse) -> int | None:
    if not getattr(response, "streaming", False):
        return len(response.content)
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


class PercallMiddleware:
    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        options: dict[str, Any] = dict(getattr(settings, "PERCALL", {}) or {})
        self.tenant = _resolver(options.pop("tenant", None))
        self.event_type = options.pop("event_type", "api.call")
        self.exclude = frozenset(options.pop("exclude", ()))
        self.client: Percall | None = None
        if options.get("url"):
            self.client = percall.init(options.pop("url"), options.pop("api_key"), **options)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path in self.exclude:
            return self.get_response(request)
        started = time.perf_counter()
        incoming = Incoming(
            {k.lower(): v for k, v in request.headers.items()},
            request.method or "GET",
            request.path,
            request,
            lambda: getattr(request, "user", None),
        )
        tenant = resolve(self.tenant, incoming)
        span = request_scope(incoming.headers.get("traceparent"), tenant)
        status: int | None = None
        bytes_out: int | None = None
        error: str | None = None
        token = enter_scope(span)
        try:
            response = self.get_response(request)
            status = response.status_code
            bytes_out = _bytes_out(response)
            return response
        except BaseException as exc:
            error, status = type_name(exc), 500
            raise
        finally:
            exit_scope(token)
            if tenant is None:  # DRF authenticates inside the view and sets request.user
                tenant = resolve(self.tenant, incoming)
            length = request.META.get("CONTENT_LENGTH") or ""
            request_event(
                self.client,
                span,
                event_type=self.event_type,
                method=incoming.method,
                route=_route_of(request),
                status=status,
                latency_ms=(time.perf_counter() - started) * 1000,
                bytes_in=int(length) if length.isdigit() else 0,
                bytes_out=bytes_out,
                tenant=tenant,
                error=error,
            )
