"""API keys, webhook endpoints with their delivery log, the team; and who may change them."""

from apps.alerts.models import WebhookEndpoint
from apps.tenants.models import ApiKey
from apps.tenants.services.api_keys import api_key_authenticate
from tests.portal.conftest import NOW, assert_no_beta

__all__ = ["NOW"]


def test_keys_list_only_the_tenants_own(world, as_user):
    response = as_user(world.viewer).get("/portal/keys/")
    text = response.content.decode()
    assert response.status_code == 200 and "alpha ci" in text
    assert world.alpha_key.api_key.prefix in text and world.alpha_key.plaintext not in text
    assert "Create a key" not in text and "Revoke" not in text  # a viewer reads only
    assert_no_beta(response, world)


def test_a_created_key_is_shown_once_and_works_for_the_tenant(world, as_user):
    client = as_user(world.billing)
    response = client.post("/portal/keys/", {"name": "deploy", "scopes": ["ingest", "read"]})
    text = response.content.decode()
    plaintext = text.split("data-plaintext")[0].rsplit('value="', 1)[1].split('"')[0]
    key = api_key_authenticate(plaintext=plaintext)
    assert key is not None and key.tenant_id == world.alpha.id
    assert key.scopes == ["ingest", "read"]
    assert plaintext not in client.get("/portal/keys/").content.decode()


def test_a_key_without_scopes_is_refused(world, as_user):
    response = as_user(world.owner).post("/portal/keys/", {"name": "none"})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not ApiKey.objects.filter(name="none").exists()


def test_revoking_a_key(world, as_user):
    prefix = world.alpha_key.api_key.prefix
    response = as_user(world.billing).post(f"/portal/keys/{prefix}/revoke/")
    assert response["Location"] == "/portal/keys/"
    assert api_key_authenticate(plaintext=world.alpha_key.plaintext) is None


def test_a_viewer_may_not_create_or_revoke_keys(world, as_user):
    client = as_user(world.viewer)
    assert client.post("/portal/keys/", {"name": "x", "scopes": ["read"]}).status_code == 403
    prefix = world.alpha_key.api_key.prefix
    assert client.post(f"/portal/keys/{prefix}/revoke/").status_code == 403
    assert api_key_authenticate(plaintext=world.alpha_key.plaintext) is not None
    assert not ApiKey.objects.filter(name="x").exists()


def test_webhooks_list_add_and_delivery_log(world, as_user):
    world.delivery(world.alpha_hook, 1)
    client = as_user(world.owner)
    listing = client.get("/portal/webhooks/")
    assert "alpha-hook.example" in listing.content.decode()
    assert_no_beta(listing, world)
    added = client.post(
        "/portal/webhooks/",
        {"url": "https://new.example/hook", "event_types": ["invoice.finalized"]},
    )
    endpoint = WebhookEndpoint.objects.get(url="https://new.example/hook")
    assert endpoint.tenant_id == world.alpha.id and endpoint.event_types == ["invoice.finalized"]
    assert endpoint.secret in added.content.decode()  # shown once
    detail = client.get(f"/portal/webhooks/{world.alpha_hook.id}/").content.decode()
    assert f"msg_{world.alpha_hook.id.hex[:8]}_1" in detail and "not tried yet" in detail


def test_a_bad_webhook_url_names_the_field(world, as_user):
    response = as_user(world.owner).post("/portal/webhooks/", {"url": "ftp://x"})
    assert response.status_code == 400
    assert "Enter a valid URL." in response.content.decode()
    assert WebhookEndpoint.objects.filter(tenant=world.alpha).count() == 1


def test_disabling_a_webhook_needs_billing(world, as_user):
    url = f"/portal/webhooks/{world.alpha_hook.id}/disable/"
    assert as_user(world.viewer).post(url).status_code == 403
    assert as_user(world.billing).post(url).status_code == 302
    world.alpha_hook.refresh_from_db()
    assert not world.alpha_hook.active


def test_team_lists_the_tenants_members(world, as_user):
    response = as_user(world.viewer).get("/portal/team/")
    text = response.content.decode()
    for name in ("olga", "bill", "vera", "max"):
        assert f"<td>{name}</td>" in text
    assert "bert" not in text
    assert_no_beta(response, world)


def test_delivery_log_queries_do_not_grow(world, as_user, django_assert_max_num_queries):
    client = as_user(world.viewer)
    url = f"/portal/webhooks/{world.alpha_hook.id}/"
    world.delivery(world.alpha_hook, 1)
    with django_assert_max_num_queries(9):
        client.get(url)
    for n in range(2, 8):
        world.delivery(world.alpha_hook, n)
    with django_assert_max_num_queries(9):
        assert "_7</code>" in client.get(url).content.decode()


def test_rotating_a_secret_shows_the_new_one_once(world, as_user):
    client = as_user(world.billing)
    old = world.alpha_hook.secret
    text = client.post(f"/portal/webhooks/{world.alpha_hook.id}/rotate/").content.decode()
    world.alpha_hook.refresh_from_db()
    assert world.alpha_hook.secret != old and world.alpha_hook.previous_secret == old
    assert world.alpha_hook.secret in text
    assert (
        world.alpha_hook.secret
        not in client.get(f"/portal/webhooks/{world.alpha_hook.id}/").content.decode()
    )


def test_sending_a_delivery_again(world, as_user):
    delivery = world.delivery(world.alpha_hook, 1)
    url = f"/portal/webhooks/{world.alpha_hook.id}/deliveries/{delivery.id}/redeliver/"
    assert as_user(world.viewer).post(url).status_code == 403
    assert (
        as_user(world.billing).post(url)["Location"] == f"/portal/webhooks/{world.alpha_hook.id}/"
    )
    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at) == ("pending", NOW)
