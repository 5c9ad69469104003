"""The webhook endpoints API: the secret shown on creation and rotation only, errors naming
the field, the delivery log, and redelivery."""

import pytest
from django.db import transaction

from apps.alerts.models import WebhookDelivery
from apps.alerts.services.webhooks import outbox_dispatch
from apps.core.outbox import outbox_publish


@pytest.fixture
def admin(make_key, api):
    return api(make_key(scopes=("read", "admin")))


@pytest.mark.django_db
def test_create_list_rotate_and_disable(admin):
    created = admin.post(
        "/api/v1/webhooks/endpoints",
        {"url": "https://hooks.example.com/percall", "event_types": ["invoice.finalized"]},
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["tenant"] is None
    assert body["event_types"] == ["invoice.finalized"]

    listed = admin.get("/api/v1/webhooks/endpoints").json()["results"]
    assert [e["id"] for e in listed] == [body["id"]]
    assert "secret" not in listed[0]  # shown once, on creation (and rotation)

    rotated = admin.post(f"/api/v1/webhooks/endpoints/{body['id']}/rotate-secret")
    assert rotated.status_code == 200
    assert (
        rotated.json()["secret"].startswith("whsec_") and rotated.json()["secret"] != body["secret"]
    )

    from django.test import Client

    gone = Client().delete(f"/api/v1/webhooks/endpoints/{body['id']}", headers=admin.headers)
    assert gone.status_code == 200 and gone.json()["active"] is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"url": "not a url"}, "url"),
        ({"url": "https://x.example.com", "event_types": ["nope"]}, "event_types[0]"),
        ({"url": "https://x.example.com", "tenant": "nobody"}, "tenant"),
    ],
)
def test_bad_input_names_the_field(admin, payload, field):
    response = admin.post("/api/v1/webhooks/endpoints", payload)
    assert response.status_code in (400, 404)
    assert response.json()["error"]["field"] == field


@pytest.mark.django_db
def test_the_delivery_log_and_a_redelivery(admin):
    endpoint = admin.post(
        "/api/v1/webhooks/endpoints", {"url": "http://127.0.0.1:9/unreachable"}
    ).json()
    with transaction.atomic():
        outbox_publish(topic="credits.low", data={"tenant": "acme"}, tenant_id=None)
    outbox_dispatch()
    delivery = WebhookDelivery.objects.get()

    detail = admin.get(f"/api/v1/webhooks/endpoints/{endpoint['id']}").json()
    (shown,) = detail["deliveries"]
    assert shown["id"] == str(delivery.id) and shown["type"] == "credits.low"

    again = admin.post(
        f"/api/v1/webhooks/endpoints/{endpoint['id']}/deliveries/{delivery.id}/redeliver"
    )
    assert again.status_code == 202 and again.json()["status"] == "pending"
    missing = admin.post(
        f"/api/v1/webhooks/endpoints/{endpoint['id']}/deliveries/not-an-id/redeliver"
    )
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "id"
