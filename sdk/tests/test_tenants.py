"""Tenant resolvers for the middleware."""

from __future__ import annotations

from types import SimpleNamespace

from percall.tenants import Incoming, first, from_api_key, from_header, from_user, resolve


def incoming(headers=None, user=None):
    return Incoming(headers or {}, "GET", "/", None, lambda: user)


def test_from_header():
    assert from_header("X-Tenant")(incoming({"x-tenant": "globex"})) == "globex"
    assert from_header("X-Tenant")(incoming()) is None


def test_from_user_reads_a_dotted_attribute_of_an_authenticated_user():
    user = SimpleNamespace(is_authenticated=True, profile=SimpleNamespace(tenant_id=42))
    assert from_user("profile.tenant_id")(incoming(user=user)) == "42"
    anonymous = SimpleNamespace(is_authenticated=False, profile=None)
    assert from_user("profile.tenant_id")(incoming(user=anonymous)) is None
    assert from_user("tenant")(incoming(user={"tenant": "globex"})) == "globex"


def test_from_api_key_strips_bearer_and_caches():
    asked = []
    resolver = from_api_key(lambda key: asked.append(key) or "globex")
    for _ in range(3):
        assert resolver(incoming({"authorization": "Bearer sk_1"})) == "globex"
    assert asked == ["sk_1"]


def test_first_and_a_failing_resolver_resolves_nothing():
    def broken(request):
        raise LookupError

    assert resolve(broken, incoming()) is None
    assert first(broken, from_header("X-Tenant"))(incoming({"x-tenant": "t"})) == "t"
