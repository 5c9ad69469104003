"""No portal route shows or touches another tenant's data: every URL pattern of the portal is
walked, signed in as alpha's owner (and as someone in both tenants, acting for alpha), with
beta's ids wherever the route takes one. A new route with a parameter this walker does not
know fails ``test_the_walker_knows_every_route_parameter``."""

import pytest
from django.urls import URLPattern, get_resolver

from apps.billing.models import Invoice
from apps.tenants.models import Membership
from apps.tenants.services.api_keys import api_key_authenticate
from tests.portal.conftest import NOW, assert_no_beta

__all__ = ["NOW"]

# Route parameters that name tenant data, and the attribute of the world holding beta's.
FOREIGN = {
    "invoice_id": lambda w: w.beta_invoice.id,
    "endpoint_id": lambda w: w.beta_hook.id,
    "prefix": lambda w: w.beta_key.api_key.prefix,
    "delivery_id": lambda w: w.beta_delivery.id,
    "membership_id": lambda w: Membership.objects.get(user=w.beta_owner, tenant=w.beta).id,
}
# Password reset links name a user and a token, not tenant data: an unknown one is refused as
# an invalid link (tested in test_auth).
NOT_TENANT_DATA = {"uidb64", "token"}


def _patterns() -> list[URLPattern]:
    (portal,) = [p for p in get_resolver().url_patterns if str(p.pattern) == "portal/"]
    return list(portal.url_patterns)


def _path(pattern: URLPattern, world) -> str | None:
    params = set(pattern.pattern.converters)
    if params & NOT_TENANT_DATA:
        return None
    route = str(pattern.pattern)
    for name in params:
        converter = pattern.pattern.converters[name]
        tags = {"UUIDConverter": "uuid", "StringConverter": "str", "IntConverter": "int"}
        tag = tags[type(converter).__name__]
        route = route.replace(f"<{tag}:{name}>", str(FOREIGN[name](world)))
    return f"/portal/{route}"


def test_the_walker_knows_every_route_parameter():
    for pattern in _patterns():
        unknown = set(pattern.pattern.converters) - set(FOREIGN) - NOT_TENANT_DATA
        assert not unknown, f"{pattern.name}: add {unknown} to FOREIGN"


@pytest.mark.parametrize("who", ["owner", "both"])
def test_every_route_with_beta_ids_is_404_and_shows_nothing_of_beta(world, client, who):
    def sign_in():
        client.force_login(getattr(world, who))
        session = client.session
        session["portal_tenant_id"] = str(world.alpha.id)
        session.save()

    world.beta_delivery = world.delivery(world.beta_hook, 1)
    beta_team = set(Membership.objects.filter(tenant=world.beta).values_list("id", "role"))
    sign_in()
    walked = 0
    for pattern in _patterns():
        path = _path(pattern, world)
        if path is None:
            continue
        walked += 1
        foreign = bool(pattern.pattern.converters)
        for method in ("get", "post"):
            response = getattr(client, method)(path)
            if not (who == "both" and pattern.name == "switch"):  # beta is theirs to choose
                assert_no_beta(response, world)
            if foreign:
                # max is a viewer in alpha: refused a change (403) whatever the id names
                # (a read-only route refuses the method first: 405)
                post = (403, 405) if who == "both" else (404, 405)
                allowed = post if method == "post" else (404, 405)
                assert response.status_code in allowed, (path, method, response.status_code)
            if path == "/portal/logout/" and method == "post":
                sign_in()  # back in for the next routes
    assert walked == len(_patterns()) - 1
    # and nothing of beta's changed
    assert api_key_authenticate(plaintext=world.beta_key.plaintext) is not None
    world.beta_hook.refresh_from_db()
    assert world.beta_hook.active
    assert not Invoice.objects.filter(tenant=world.beta, kind="credit_purchase").exists()
    world.beta_delivery.refresh_from_db()
    assert world.beta_delivery.next_attempt_at is None  # never redelivered
    assert world.beta_hook.previous_secret == ""  # never rotated
    assert set(Membership.objects.filter(tenant=world.beta).values_list("id", "role")) == beta_team


def test_a_foreign_pdf_is_404(world, as_user):
    response = as_user(world.owner).get(f"/portal/invoices/{world.beta_invoice.id}/pdf/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert_no_beta(response, world)


def test_a_foreign_delivery_under_ones_own_endpoint_is_404(world, as_user):
    beta_delivery = world.delivery(world.beta_hook, 1)
    url = f"/portal/webhooks/{world.alpha_hook.id}/deliveries/{beta_delivery.id}/redeliver/"
    response = as_user(world.owner).post(url)
    assert response.status_code == 404
    beta_delivery.refresh_from_db()
    assert beta_delivery.next_attempt_at is None
