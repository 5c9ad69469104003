"""Outbound webhooks: events published in a transaction become signed messages only if it
commits, reach a real HTTP receiver, verify with the Standard Webhooks reference library, and
are retried on the spec's schedule (410 disables the endpoint, retry-after is honoured)."""

import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import standardwebhooks
import time_machine
from django.db import transaction

from apps.alerts.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookMessage
from apps.alerts.services.webhooks import (
    RETRY_SCHEDULE,
    outbox_dispatch,
    webhook_deliveries_run,
    webhook_endpoint_create,
    webhook_redeliver,
    webhook_secret_rotate,
)
from apps.billing.models import Invoice
from apps.billing.services.operations import invoice_void
from apps.billing.services.runs import billing_run
from apps.core.errors import ValidationFailed
from apps.core.models import OutboxEvent
from apps.core.outbox import outbox_publish
from tests.billing.billing_setup import catalog_load, subscribe

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class Receiver:
    """A local HTTP server that answers each POST with the next planned status (200 when the
    plan runs out) and keeps what it received."""

    def __init__(self) -> None:
        self.plan: list[tuple[int, dict[str, str]]] = []
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status, headers = receiver.plan.pop(0) if receiver.plan else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    # Messages are created "now" and first due then: the clock is pinned so that the tests
    # can step it through the retry schedule.
    with time_machine.travel(NOW, tick=False):
        server = Receiver()
        yield server
        server.close()


def publish(topic: str, tenant_id=None, **data) -> None:
    with transaction.atomic():
        outbox_publish(topic=topic, data=data, tenant_id=tenant_id)


@pytest.mark.django_db
def test_a_delivery_verifies_with_the_reference_library(receiver, make_tenant):
    # given an operator endpoint for invoice events, and an event published
    endpoint = webhook_endpoint_create(
        url=receiver.url, tenant_id=None, event_types=["invoice.finalized"]
    )
    acme = make_tenant("acme")
    publish("invoice.finalized", tenant_id=acme.id, invoice={"number": "PC-2026-000001"})

    # when it is dispatched and delivered
    assert outbox_dispatch() == 1
    assert webhook_deliveries_run() == 1

    # then the receiver got it once, signed, and the reference verifier accepts it
    ((headers, body),) = receiver.received
    payload = standardwebhooks.Webhook(endpoint.secret).verify(body, headers)
    assert payload["type"] == "invoice.finalized"
    assert payload["data"] == {"invoice": {"number": "PC-2026-000001"}}
    message = WebhookMessage.objects.get()
    assert headers["webhook-id"] == message.msg_id
    assert headers["webhook-signature"].startswith("v1,")
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    assert not OutboxEvent.objects.exists()
    # a tampered body does not verify
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(endpoint.secret).verify(body.replace(b"0001", b"0002"), headers)


@pytest.mark.django_db
def test_nothing_is_sent_for_a_transaction_that_rolls_back(receiver):
    webhook_endpoint_create(url=receiver.url, tenant_id=None, event_types=[])

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        outbox_publish(topic="invoice.voided", data={"invoice": {}}, tenant_id=None)
        raise Abort

    assert outbox_dispatch() == 0
    assert webhook_deliveries_run() == 0
    assert receiver.received == []


@pytest.mark.django_db
def test_endpoints_get_their_types_and_tenant_endpoints_only_their_tenant(receiver, make_tenant):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    everything = webhook_endpoint_create(url=receiver.url, tenant_id=None, event_types=[])
    acme_only = webhook_endpoint_create(url=receiver.url, tenant_id=acme.id, event_types=[])
    statements = webhook_endpoint_create(
        url=receiver.url, tenant_id=None, event_types=["statement.issued"]
    )

    publish("invoice.finalized", tenant_id=acme.id)
    publish("invoice.finalized", tenant_id=globex.id)
    publish("statement.issued")
    outbox_dispatch()

    def got(endpoint: WebhookEndpoint) -> list[tuple[str, str | None]]:
        rows = WebhookDelivery.objects.filter(endpoint=endpoint).select_related("message")
        return sorted(
            (d.message.event_type, d.message.tenant.external_id if d.message.tenant else None)
            for d in rows
        )

    assert got(everything) == [
        ("invoice.finalized", "acme"),
        ("invoice.finalized", "globex"),
        ("statement.issued", None),
    ]
    assert got(acme_only) == [("invoice.finalized", "acme")]  # not globex's, not the operator's
    assert got(statements) == [("statement.issued", None)]


@pytest.mark.django_db
def test_failures_follow_the_retry_schedule_then_succeed(receiver):
    endpoint = webhook_endpoint_create(url=receiver.url, tenant_id=None, event_types=[])
    publish("credits.low")
    outbox_dispatch()
    receiver.plan = [(500, {}), (503, {})]
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)

    # the first try fails: the next is 5 s later (the schedule's first wait)
    assert webhook_deliveries_run(now=NOW) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.next_attempt_at == NOW + timedelta(seconds=5)
    # nothing is due before then
    assert webhook_deliveries_run(now=NOW + timedelta(seconds=4)) == 0
    # the second fails too: then 5 minutes
    assert webhook_deliveries_run(now=NOW + timedelta(seconds=5)) == 1
    delivery.refresh_from_db()
    assert delivery.next_attempt_at == NOW + timedelta(seconds=5) + timedelta(minutes=5)
    # the third succeeds; the log has all three, and every try carried the same webhook-id
    assert webhook_deliveries_run(now=NOW + timedelta(minutes=6)) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 3)
    log = list(
        WebhookAttempt.objects.filter(delivery=delivery).values_list("number", "status_code")
    )
    assert log == [(1, 500), (2, 503), (3, 200)]
    assert len({headers["webhook-id"] for headers, _ in receiver.received}) == 1


@pytest.mark.django_db
def test_the_schedule_spans_about_three_days_then_the_delivery_fails(receiver):
    webhook_endpoint_create(url=receiver.url, tenant_id=None, event_types=[])
    publish("credits.low")
    outbox_dispatch()
    receiver.plan = [(500, {})] * (len(RETRY_SCHEDULE) + 1)
    moment = NOW
    for _ in range(len(RETRY_SCHEDULE) + 1):
        assert webhook_deliveries_run(now=moment) == 1
        delivery = WebhookDelivery.objects.get()
        moment = delivery.next_attempt_at or moment

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 10)
    # 5 s + 5 min + 30 min + 2 h + 5 h + 10 h + 14 h + 20 h + 24 h after the first try
    assert moment - NOW == timedelta(seconds=5, minutes=5 + 30, hours=2 + 5 + 10 + 14 + 20 + 24)


@pytest.mark.django_db
def test_retry_after_is_honoured_when_longer_and_410_disables_the_endpoint(receiver):
    endpoint = webhook_endpoint_create(url=receiver.url, tenant_id=None, event_types=[])
    publish("credits.low")
    outbox_dispatch()
    receiver.plan = [(429, {"Retry-After": "120"}), (410, {})]

    webhook_deliveries_run(now=NOW)
    delivery = WebhookDelivery.objects.get()
    assert delivery.next_attempt_at == NOW + timedelta(seconds=120)  # not the schedule's 5 s

    webhook_deliveries_run(now=NOW + timedelta(seconds=120))
    delivery.refresh_from_db()
    endpoint.refresh_from_db()
    assert delivery.status == "failed"
    assert not endpoint.active and "410" in endpoint.disabled_reason
    # a disabled endpoint gets no new deliveries
    publish("credits.low")
    outbox_dispatch()
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.django_db
def test_an_unreachable_endpoint_is_retried(receiver):
    endpoint = webhook_endpoint_create(
        url="http://127.0.0.1:9/nothing-listens", tenant_id=None, event_types=[]
    )
    publish("credits.low")
    outbox_dispatch()

    webhook_deliveries_run(now=NOW)

    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    (attempt,) = delivery.log.all()
    assert attempt.status_code is None and attempt.error
    assert delivery.status == "pending" and delivery.next_attempt_at == NOW + timedelta(seconds=5)


@pytest.mark.django_db
def test_after_a_rotation_both_secrets_sign_for_a_day(receiver):
    endpoint = webhook_endpoint_create(url=receiver.url, tenant_id=None, event_types=[])
    old = endpoint.secret
    rotated = webhook_secret_rotate(endpoint_id=endpoint.id)
    assert rotated.secret != old and rotated.previous_secret == old
    publish("credits.low")
    outbox_dispatch()
    webhook_deliveries_run()

    ((headers, body),) = receiver.received
    assert len(headers["webhook-signature"].split(" ")) == 2
    standardwebhooks.Webhook(old).verify(body, headers)
    standardwebhooks.Webhook(rotated.secret).verify(body, headers)


@pytest.mark.django_db
def test_a_redelivery_sends_the_same_message_again(receiver):
    webhook_endpoint_create(url=receiver.url, tenant_id=None, event_types=[])
    publish("credits.low", note="first")
    outbox_dispatch()
    webhook_deliveries_run()
    delivery = WebhookDelivery.objects.get()

    webhook_redeliver(delivery_id=delivery.id)
    webhook_deliveries_run()

    first, second = receiver.received
    assert first[1] == second[1] and first[0]["webhook-id"] == second[0]["webhook-id"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)


@pytest.mark.django_db
def test_an_endpoint_needs_an_http_url_and_known_event_types():
    with pytest.raises(ValidationFailed) as bad_url:
        webhook_endpoint_create(url="ftp://example.com/x", tenant_id=None, event_types=[])
    assert bad_url.value.field == "url"
    with pytest.raises(ValidationFailed) as bad_type:
        webhook_endpoint_create(
            url="https://example.com/hooks",
            tenant_id=None,
            event_types=["invoice.finalized", "invoice.exploded"],
        )
    assert bad_type.value.field == "event_types[1]"
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_finalizing_voiding_and_issuing_publish_events(make_tenant):
    # given acme on the growth plan (99.00 a month) from October, its October invoice final
    catalog_load()
    acme = make_tenant("acme")
    subscribe(acme, "growth", datetime(2026, 10, 1, tzinfo=UTC))
    billing_run(as_of=datetime(2026, 11, 1, 2, tzinfo=UTC))
    invoice = Invoice.objects.get(tenant=acme)

    # then its finalization is an outbox event with what a receiver needs
    (finalized,) = OutboxEvent.objects.filter(topic="invoice.finalized")
    assert finalized.tenant_id == acme.id
    assert finalized.data["invoice"] == {
        "id": str(invoice.id),
        "number": invoice.number,
        "tenant": "acme",
        "kind": "subscription",
        "status": "finalized",
        "currency": "USD",
        "period_start": "2026-10-01T00:00:00Z",
        "period_end": "2026-11-01T00:00:00Z",
        "subtotal": "99.00",
        "credits_applied": "0.00",
        "tax": "0.00",
        "total": "99.00",
        "due_at": invoice.due_at.isoformat().replace("+00:00", "Z"),
    }

    # and voiding it is another
    invoice_void(invoice_id=invoice.id, reason="wrong plan")
    (voided,) = OutboxEvent.objects.filter(topic="invoice.voided")
    assert voided.data["invoice"]["status"] == "void"
