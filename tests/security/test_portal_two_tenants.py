"""Someone in two tenants acts in one at a time: what they see and change in the portal is the
selected tenant's only, even where they could act for the other one; switching needs a
membership, and losing one ends acting for that tenant on the next request."""

from django.test import Client

from apps.alerts.models import WebhookEndpoint
from apps.portal.access import SESSION_TENANT
from apps.tenants.models import ApiKey, Membership
from tests.security.world import NOW, World

__all__ = ["NOW"]


def _acting(world: World, tenant) -> Client:
    client = Client()
    client.force_login(world.both)
    assert client.post("/portal/tenants/", {"tenant": str(tenant.id)}).status_code == 302
    return client


def test_acting_for_a_shows_and_changes_a_only(world):
    client = _acting(world, world.a.tenant)

    pages = {path: client.get(path).content.decode() for path in (
        "/portal/", "/portal/invoices/", "/portal/keys/", "/portal/webhooks/", "/portal/team/",
        "/portal/credits/",
    )}  # fmt: skip
    for path, page in pages.items():
        assert "<h1>" in page, path
        for secret in (world.b.invoice.number, str(world.b.endpoint.id), "bramble-secret"):
            assert secret not in page, (path, secret)
    assert world.a.invoice.number in pages["/portal/invoices/"]
    # B's objects are 404 though max is B's owner: max acts for A now.
    for path in (
        f"/portal/invoices/{world.b.invoice.id}/",
        f"/portal/invoices/{world.b.invoice.id}/pdf/",
        f"/portal/webhooks/{world.b.endpoint.id}/",
    ):
        assert client.get(path).status_code == 404, path
    assert client.post(f"/portal/keys/{world.b.key.api_key.prefix}/revoke/").status_code == 404
    assert client.post(f"/portal/team/{world.b.membership.id}/remove/").status_code == 404

    client.post("/portal/keys/", {"name": "max ci", "scopes": "read"})
    client.post("/portal/webhooks/", {"url": "https://max.example/in"})

    assert ApiKey.objects.get(name="max ci").tenant_id == world.a.tenant.id
    assert WebhookEndpoint.objects.get(url="https://max.example/in").tenant_id == world.a.tenant.id
    world.b.key.api_key.refresh_from_db()
    assert world.b.key.api_key.revoked_at is None
    assert Membership.objects.filter(id=world.b.membership.id).exists()


def test_switching_to_b_turns_the_tables(world):
    client = _acting(world, world.b.tenant)

    invoices = client.get("/portal/invoices/").content.decode()
    assert world.b.invoice.number in invoices and world.a.invoice.number not in invoices
    assert client.get(f"/portal/invoices/{world.a.invoice.id}/").status_code == 404
    assert client.get(f"/portal/invoices/{world.b.invoice.id}/").status_code == 200
    client.post("/portal/keys/", {"name": "max b", "scopes": "read"})
    assert ApiKey.objects.get(name="max b").tenant_id == world.b.tenant.id


def test_switching_needs_a_membership(world):
    client = Client()
    client.force_login(world.a_owner)

    for chosen in (str(world.b.tenant.id), world.b.tenant.external_id, "not-a-tenant", ""):
        response = client.post("/portal/tenants/", {"tenant": chosen})
        assert response.status_code == 404, chosen
        assert world.b.tenant.name not in response.content.decode()
    assert client.session.get(SESSION_TENANT) in (None, str(world.a.tenant.id))
    assert client.get(f"/portal/invoices/{world.b.invoice.id}/").status_code == 404
    assert "<h1>Acorn Analytics</h1>" in client.get("/portal/").content.decode()


def test_losing_the_membership_ends_acting_for_that_tenant(world):
    client = _acting(world, world.b.tenant)
    assert client.get(f"/portal/invoices/{world.b.invoice.id}/").status_code == 200

    Membership.objects.filter(user=world.both, tenant=world.b.tenant).delete()

    # The session still names B; it is ignored, and max acts for the one tenant left.
    assert client.session[SESSION_TENANT] == str(world.b.tenant.id)
    assert client.get(f"/portal/invoices/{world.b.invoice.id}/").status_code == 404
    assert "<h1>Acorn Analytics</h1>" in client.get("/portal/").content.decode()
    assert client.post("/portal/tenants/", {"tenant": str(world.b.tenant.id)}).status_code == 404
