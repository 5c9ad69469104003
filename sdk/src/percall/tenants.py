"""Tenant resolvers for the request middleware: callables taking an ``Incoming`` request and
returning the tenant's external id in Percall, or None.

    PercallMiddleware(app, tenant=percall.tenants.from_header("X-Tenant"))
    tenant=percall.tenants.from_api_key(lambda key: Key.objects.get(secret=key).tenant_slug)
    tenant=percall.tenants.first(from_user("profile.tenant"), from_header("X-Tenant"))
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

Resolver = Callable[["Incoming"], "str | None"]


class Incoming:
    """What a resolver may look at, the same for Django and ASGI: lower-case ``headers``,
    ``method``, ``path``, ``user`` (Django's ``request.user``, ASGI's ``scope["user"]``) and the
    framework's own request object as ``raw``."""

    __slots__ = ("_user", "headers", "method", "path", "raw")

    def __init__(
        self,
        headers: Mapping[str, str],
        method: str,
        path: str,
        raw: Any,
        user: Callable[[], Any],
    ) -> None:
        self.headers = headers
        self.method = method
        self.path = path
        self.raw = raw
        self._user = user

    @property
    def user(self) -> Any:
        return self._user()


def resolve(resolver: Resolver | None, incoming: Incoming) -> str | None:
    """The resolver's answer; a resolver that raises resolves nothing (never fails a request)."""
    if resolver is None:
        return None
    try:
        tenant = resolver(incoming)
    except Exception:
        return None
    return None if tenant is None or tenant == "" else str(tenant)


def from_header(name: str = "X-Tenant") -> Resolver:
    """The tenant named by a request header (set by your gateway)."""
    header = name.lower()
    return lambda incoming: incoming.headers.get(header) or None


def from_api_key(
    lookup: Callable[[str], str | None], header: str = "authorization", cache_size: int = 4096
) -> Resolver:
    """The tenant owning the caller's API key: ``lookup(key)`` is asked once per key (then
    cached; keep ``cache_size`` above your number of live keys). ``Bearer`` is stripped."""
    cached = functools.lru_cache(maxsize=cache_size)(lookup)
    name = header.lower()

    def resolver(incoming: Incoming) -> str | None:
        value = incoming.headers.get(name)
        if not value:
            return None
        if value[:7].lower() == "bearer ":
            value = value[7:]
        return cached(value.strip())

    return resolver


def from_user(attribute: str = "username") -> Resolver:
    """The tenant read from the authenticated user, e.g. ``"profile.tenant_id"``."""
    path = attribute.split(".")

    def resolver(incoming: Incoming) -> str | None:
        value = incoming.user
        if value is None or getattr(value, "is_authenticated", True) is False:
            return None
        for part in path:
            value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
            if value is None:
                return None
        return str(value)

    return resolver


def first(*resolvers: Resolver) -> Resolver:
    """The first non-empty answer of several resolvers."""

    def resolver(incoming: Incoming) -> str | None:
        for each in resolvers:
            tenant = resolve(each, incoming)
            if tenant is not None:
                return tenant
        return None

    return resolver
