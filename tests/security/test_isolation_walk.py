"""Tenant isolation across every URL of the project, walked from Django's resolver.

Each route's parameters are filled with tenant B's objects (tests/security/routes.py says how)
and requested with GET, POST, PATCH, PUT and DELETE by A's credentials: A's tenant-bound API key
with every scope, a portal session of A's owner (a member of A only), and a portal session of
someone in both tenants acting for A. Each answer must be a refusal the surface gives (404 for
another tenant's id, 401/403/a redirect to sign-in where the credential cannot reach the
surface at all), indistinguishable from the answer for an id that does not exist, and free of
anything that identifies B; and afterwards not one row of the database has changed.

Routes without a tenant-owned id are walked too, with ``?tenant=<B>`` style filters and, on
the write endpoints, bodies naming B.
"""

import itertools
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from apps.portal.access import SESSION_TENANT
from tests.security.routes import (
    FOREIGN,
    NO_TENANT_ID,
    NOT_TENANT_DATA,
    PUBLIC,
    Route,
    routes,
    unknown_value,
)
from tests.security.world import NOW, World, snapshot, snapshot_diff

__all__ = ["NOW"]

METHODS = ("get", "post", "patch", "put", "delete")
QUERY_DAY = {
    "period": "2026-11",
    "from": "2026-11-18T00:00:00Z",
    "to": "2026-11-19T00:00:00Z",
    "hour": "2026-11-18T10:00:00Z",
}


def _bodies(w: World) -> dict[str, dict]:
    """Bodies that would be accepted but for the tenant: so only the scope can refuse."""
    b = w.b.tenant.external_id
    return {
        "api/v1/subscriptions": {"tenant": b, "plan": "growth", "start": "2026-12-01T00:00:00Z"},
        "api/v1/subscriptions/<uuid:subscription_id>/plan": {"plan": "pro"},
        "api/v1/subscriptions/<uuid:subscription_id>/cancel": {"immediately": True},
        "api/v1/invoices/<uuid:invoice_id>/void": {"reason": "walk", "reissue": True},
        "api/v1/invoices/<uuid:invoice_id>/credit-notes": {"amount": "5.00", "reason": "walk"},
        "api/v1/tenants/<str:external_id>/credit-purchases": {"pack": "pack-100"},
        "api/v1/tenants": {"external_id": "walk", "name": "Walk", "currency": "USD"},
        "api/v1/events": {"events": [{"id": "walk-1", "tenant": b, "type": "api.call"}]},
        "api/v1/webhooks/endpoints": {"url": "https://steal.example/in", "tenant": b},
        "api/v1/budgets": {
            "name": "walk", "scope": "tenant", "measure": "usage", "meter": "calls",
            "amount": "1", "tenant": b,
        },
        "api/v1/budgets/<str:budget_id>": {"amount": "1000"},
        "api/v1/leakage/scans": {"period": "2026-11", "tenant": b},
        "api/v1/leakage/findings/<str:finding_id>/resolve": {"reason": "walk"},
        "api/v1/statements/<str:statement_id>/corrections": {"reason": "walk"},
        "portal/team/<int:membership_id>/role/": {"role": "viewer"},
        "portal/tenants/": {"tenant": str(w.b.tenant.id)},
        "portal/webhooks/": {"url": "https://steal.example/in", "tenant": str(w.b.tenant.id)},
        "portal/keys/": {"name": "walk", "scopes": "read", "tenant": str(w.b.tenant.id)},
        "console/assurance/findings/<uuid:finding_id>/<str:action>/": {"reason": "walk"},
    }  # fmt: skip


@dataclass
class Credential:
    name: str
    client: Client
    headers: dict[str, str]
    sign_in: Any

    @property
    def is_key(self) -> bool:
        return bool(self.headers)


def _credentials(w: World) -> list[Credential]:
    key = Credential("key", Client(), {"Authorization": f"Bearer {w.a.key.plaintext}"}, None)

    def session(user) -> Credential:
        client = Client()

        def sign_in() -> None:
            client.force_login(user)
            stored = client.session
            stored[SESSION_TENANT] = str(w.a.tenant.id)
            stored.save()

        sign_in()
        return Credential(f"session:{user.username}", client, {}, sign_in)

    return [key, session(w.a_owner), session(w.both)]


def _secrets(w: World, credential: Credential) -> tuple[str, ...]:
    secrets = w.b_secrets()
    if credential.name == "session:max":
        # B is one of max's own tenants: the switcher names it on every page. Its objects,
        # numbers and people never show while max acts for A.
        named = (w.b.tenant.external_id, w.b.tenant.name, "Bramble", str(w.b.tenant.id))
        named += (w.b.tenant.id.hex, "bramble")
        secrets = (*(s for s in secrets if s not in named), "bramble-secret")
    return secrets


# Per-request values: CSRF tokens (forms, htmx headers, the cookie) and the purchase form's
# one-time token.
_CSRF = re.compile(
    r'((?:name="(?:csrfmiddlewaretoken|token)" value=")|X-CSRFToken&quot;: &quot;'
    r'|X-CSRFToken": "|csrftoken=)[^";&]+'
)


def _text(response) -> str:
    headers = "\n".join(
        f"{k}: {v}" for k, v in response.items() if k.lower() not in ("x-request-id",)
    )
    return headers + "\n" + response.content.decode(errors="replace")


def _masked(text: str, sent: list[str]) -> str:
    """The answer without the values the caller itself sent (a 404 may echo the id asked for),
    nor per-request tokens."""
    for value in sorted(sent, key=len, reverse=True):
        text = text.replace(value, "<sent>")
    return _CSRF.sub(lambda m: m[1] + "<token>", text)


def _send(credential: Credential, route: Route, method: str, path: str, w: World, query=None):
    body = _bodies(w).get(route.text, {})
    headers = dict(credential.headers)
    if "credit-purchases" in route.text:
        headers["Idempotency-Key"] = "walk-1"
    client = credential.client
    if route.surface == "api/v1/" or method not in ("get", "post"):
        if method == "get":
            return client.get(path, query or {}, headers=headers), body
        payload = json.dumps(body) if route.surface == "api/v1/" else ""
        content_type = "application/json"
        return client.generic(method.upper(), path, payload, content_type, headers=headers), body
    if method == "get":
        return client.get(path, query or {}, headers=headers), body
    return client.post(path, body, headers=headers), body


def _scalars(value: Any) -> Iterator[str]:
    """Every text or number inside a request body."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from _scalars(item)
    elif isinstance(value, str | int) and not isinstance(value, bool):
        yield str(value)


def _redirect_to(response, login: str) -> bool:
    return response.status_code == 302 and response["Location"].startswith(login)


def _expected(route: Route, credential: Credential, response, foreign: bool) -> str | None:
    """Why ``response`` is not what the surface answers this credential, or None if it is."""
    status = response.status_code
    if status >= 500:
        return "server error"
    if route.text in PUBLIC:
        return None
    surface = route.surface
    if surface == "api/v1/":
        allowed = {404, 403, 405} if credential.is_key else {401, 403}
        if credential.is_key and not foreign:
            return None  # the key's own data, filtered: only "no B data" applies
        return None if status in allowed else f"{status} not in {sorted(allowed)}"
    if surface == "admin/":
        # Staff only: everyone here is sent to the admin's sign-in (or refused the method).
        if _redirect_to(response, "/admin/login/") or status in (404, 405):
            return None
        if route.text == "admin/logout/" and status in (200, 302):
            return None
        return f"{status}: the admin let a non-staff caller in"
    if surface == "console/":
        if route.text in ("console/logout/",) and status in (200, 302):
            return None
        if credential.is_key:
            ok = _redirect_to(response, "/console/login/") or status == 405
        else:
            ok = status in (403, 405)
        return None if ok else f"{status}: the console let a partner in"
    if surface == "portal/":
        if credential.is_key:
            ok = _redirect_to(response, "/portal/login/") or status == 405
            return None if ok else f"{status}: the portal answered an API key"
        if foreign:
            return None if status in (404, 405) else f"{status} for another tenant's id"
        return None
    return None


def _fills(route: Route, w: World, side) -> Iterator[dict[str, Any]]:
    """Every filling of the route's parameters: B's objects (or ``side``'s), and each value
    of the parameters that name no tenant data."""
    fixed = {name: FOREIGN[name](w, side, route) for name in route.foreign}
    free = [name for name in route.parameters if name not in FOREIGN]
    for combo in itertools.product(*(NOT_TENANT_DATA[name] for name in free)):
        yield fixed | dict(zip(free, combo, strict=True))


def _walk(w: World) -> Iterator[tuple[Route, Credential, str, str, Any, list[str], bool]]:
    """Every (route, credential, method) request with B's ids, and with unknown ids for the
    comparison."""
    for route, credential in itertools.product(routes(), _credentials(w)):
        methods = ("get", "post") if route.surface == "admin/" else METHODS
        for values, method in itertools.product(_fills(route, w, w.b), methods):
            path = route.path(values)
            queries: list[dict | None] = [None]
            if not route.foreign and method == "get":
                b = w.b.tenant
                queries = [QUERY_DAY | {"tenant": b.external_id}, QUERY_DAY | {"tenant_id": b.id}]
            for query in queries:
                response, body = _send(credential, route, method, path, w, query)
                sent = [str(v) for v in values.values()]
                sent += [str(v) for v in (query or {}).values()]
                sent += list(_scalars(body))
                yield route, credential, method, path, response, sent, bool(route.foreign)
                if credential.sign_in and re.search(r"logout|tenants/$", route.text):
                    credential.sign_in()  # signed out or switched: back in, acting for A


def test_every_route_parameter_is_known():
    """A new route whose parameter the walker cannot fill, or a new route without a tenant-owned
    id that is not in NO_TENANT_ID, fails here: add it to tests/security/routes.py."""
    unknown = {
        route.text: sorted(set(route.parameters) - set(FOREIGN) - set(NOT_TENANT_DATA))
        for route in routes()
    }
    assert {text: names for text, names in unknown.items() if names} == {}
    unlisted = [
        route.text
        for route in routes()
        if not route.foreign and route.surface != "admin/" and route.text not in NO_TENANT_ID
        and route.text not in PUBLIC
    ]  # fmt: skip
    assert unlisted == []
    stale = set(NO_TENANT_ID) - {route.text for route in routes()}
    assert stale == set()


def test_every_route_resolves_to_its_own_view(world):
    """The walker's paths reach the route they were made from (else it would walk 404s)."""
    from django.urls import resolve

    for route in routes():
        for values in _fills(route, world, world.b):
            match = resolve(route.path(values))
            assert match.func == route.pattern.callback, route.text


def test_no_url_shows_or_changes_another_tenants_data(world):
    before = snapshot()
    problems: list[str] = []
    walked: set[str] = set()
    requests = 0
    for route, credential, method, path, response, sent, foreign in _walk(world):
        requests += 1
        walked.add(route.text)
        where = f"{method.upper()} {path} as {credential.name}"
        text = _masked(_text(response), sent)
        leaked = [s for s in _secrets(world, credential) if s in text]
        if leaked:
            problems.append(f"{where}: {response.status_code} shows B's {leaked}")
        wrong = _expected(route, credential, response, foreign)
        if wrong:
            problems.append(f"{where}: {wrong}")
    assert problems == []
    assert walked == {route.text for route in routes()}
    assert requests > 2000
    # Not one row changed or went; what was added (A's own key, endpoint, refused batch, made
    # by the list endpoints' writes) is A's, never B's.
    changed, added = snapshot_diff(before, snapshot())
    assert changed == []
    b_ids = (str(world.b.tenant.id), world.b.tenant.external_id)
    assert [row for row in added if any(ref in row for ref in b_ids)] == []


def _unknown_fill(route: Route, values: dict[str, Any]) -> dict[str, Any]:
    return {
        name: (unknown_value(name) if name in route.foreign else value)
        for name, value in values.items()
    }


@pytest.mark.parametrize("surface", ["api/v1/", "portal/"])
def test_another_tenants_id_reads_exactly_like_an_unknown_one(world, surface):
    """A 404 for B's id is the 404 for an id that names nothing: nothing tells B's ids apart."""
    credential = _credentials(world)[0 if surface == "api/v1/" else 1]
    compared = 0
    for route in routes():
        if route.surface != surface or not route.foreign:
            continue
        for values, method in itertools.product(_fills(route, world, world.b), ("get", "post")):
            foreign, _ = _send(credential, route, method, route.path(values), world)
            unknown_values = _unknown_fill(route, values)
            unknown, _ = _send(credential, route, method, route.path(unknown_values), world)
            compared += 1
            assert foreign.status_code == unknown.status_code, (route.text, method)
            sent = [str(v) for v in values.values()]
            text = _masked(foreign.content.decode(errors="replace"), sent)
            sent = [str(v) for v in unknown_values.values()]
            other = _masked(unknown.content.decode(errors="replace"), sent)
            assert text == other, (route.text, method)
    assert compared >= 18


@pytest.mark.parametrize("surface", ["api/v1/", "portal/"])
def test_a_filter_naming_another_tenant_reads_exactly_like_one_naming_nobody(world, surface):
    """``?tenant=<B>`` (or ``?tenant_id=``) answers what ``?tenant=<nobody>`` answers: a 404 where
    the endpoint filters by tenant, A's own answer where it takes no such filter; never B's
    figures (which carry no B name, so only this comparison shows them)."""
    credential = _credentials(world)[0 if surface == "api/v1/" else 1]
    b = world.b.tenant
    pairs = (
        ({"tenant": b.external_id}, {"tenant": "nobody00"}),
        ({"tenant_id": b.id}, {"tenant_id": uuid.uuid4()}),
    )
    refused = set()
    for route in routes():
        if route.surface != surface or route.foreign or route.parameters:
            continue
        for foreign_query, unknown_query in pairs:
            path = route.path({})
            foreign, _ = _send(credential, route, "get", path, world, QUERY_DAY | foreign_query)
            unknown, _ = _send(credential, route, "get", path, world, QUERY_DAY | unknown_query)
            assert foreign.status_code == unknown.status_code, (route.text, foreign_query)
            sent = [str(v) for v in foreign_query.values()]
            other = [str(v) for v in unknown_query.values()]
            text = _masked(foreign.content.decode(errors="replace"), sent)
            assert text == _masked(unknown.content.decode(errors="replace"), other), route.text
            if foreign.status_code == 404:
                refused.add(route.text)
    if surface == "api/v1/":
        # The endpoints that take a tenant filter refuse B's.
        assert {
            "api/v1/usage", "api/v1/usage/check", "api/v1/subscriptions", "api/v1/invoices",
            "api/v1/invoices/preview", "api/v1/budgets",
        } <= refused  # fmt: skip


def test_the_same_routes_answer_a_own_ids(world):
    """The control: with A's own ids the same paths do not 404, so the walk's 404s are the
    tenant scope at work, not malformed paths."""
    key, session, _ = _credentials(world)
    for route in routes():
        if not route.foreign or route.surface not in ("api/v1/", "portal/"):
            continue
        credential = key if route.surface == "api/v1/" else session
        for values in _fills(route, world, world.a):
            response, _ = _send(credential, route, "get", route.path(values), world)
            assert response.status_code in (200, 403, 405), (route.text, response.status_code)
