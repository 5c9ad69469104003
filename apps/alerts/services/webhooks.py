"""Outbound webhooks: endpoints, turning outbox events into messages, and delivering them.

Dispatch (``outbox_dispatch``) claims outbox rows (SKIP LOCKED) and, in the same transaction,
writes one message per event and a delivery per subscribed endpoint: an operator endpoint
gets every tenant's events, a tenant's endpoint only that tenant's. Deliveries are tried by
``webhook_deliveries_run`` (a sweep, so a retry survives any restart): a due delivery is leased
in one short transaction, POSTed outside any transaction, and the answer recorded in another.
Only 2xx succeeds; 410 disables the endpoint; otherwise the next try follows the schedule
(or the receiver's ``retry-after`` when later), about three days in all.
"""

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import connection, transaction
from django.utils import timezone

from apps.alerts.errors import (
    WebhookDeliveryNotFound,
    WebhookEndpointInvalid,
    WebhookEndpointNotFound,
)
from apps.alerts.models import (
    EVENT_TYPES,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from apps.alerts.services.notifications import email_notifications_queue
from apps.alerts.services.signing import signature_header, webhook_secret_new
from apps.core.audit import audit_record
from apps.core.jobs import job_enqueue_on_commit
from apps.core.models import OutboxEvent

# Seconds after the first try (which is immediate): Standard Webhooks' schedule.
RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
TIMEOUT_SECONDS = 10
LEASE = timedelta(seconds=60)  # longer than a try can take
ROTATION_OVERLAP = timedelta(hours=24)
DELIVER_TASK = "alerts.webhook_deliveries_run"


def _event_types_check(event_types: Sequence[str]) -> list[str]:
    for index, name in enumerate(event_types):
        if name not in EVENT_TYPES:
            raise WebhookEndpointInvalid(
                f"event_types[{index}]: {name!r} is not one of {', '.join(EVENT_TYPES)}",
                field=f"event_types[{index}]",
            )
    return sorted(set(event_types))


def _url_check(url: str) -> str:
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError as exc:
        raise WebhookEndpointInvalid(f"url: {url!r} is not an http(s) URL", field="url") from exc
    return url


@transaction.atomic
def webhook_endpoint_create(
    *, url: str, tenant_id: UUID | None, event_types: Sequence[str], description: str = ""
) -> WebhookEndpoint:
    """A new endpoint with a fresh secret (shown by the API on creation and rotation)."""
    endpoint = WebhookEndpoint(
        url=_url_check(url),
        tenant_id=tenant_id,
        event_types=_event_types_check(event_types),
        description=description,
        secret=webhook_secret_new(),
    )
    endpoint.full_clean()
    endpoint.save()
    audit_record(
        action="webhook_endpoint.create",
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        tenant_id=tenant_id,
        after={"url": endpoint.url, "event_types": endpoint.event_types},
    )
    return endpoint


@transaction.atomic
def webhook_secret_rotate(*, endpoint_id: UUID) -> WebhookEndpoint:
    """A new secret; the old one keeps signing beside it for ``ROTATION_OVERLAP``."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(id=endpoint_id)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = timezone.now() + ROTATION_OVERLAP
    endpoint.secret = webhook_secret_new()
    endpoint.save()
    audit_record(
        action="webhook_endpoint.rotate_secret",
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        tenant_id=endpoint.tenant_id,
        after={"previous_secret_expires_at": endpoint.previous_secret_expires_at},
    )
    return endpoint


@transaction.atomic
def webhook_endpoint_disable(*, endpoint_id: UUID, reason: str) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.select_for_update().get(id=endpoint_id)
    endpoint.active = False
    endpoint.disabled_reason = reason[:200]
    endpoint.save()
    return endpoint


def _claim_outbox(limit: int) -> list[OutboxEvent]:
    rows = OutboxEvent.objects.order_by("id")
    if connection.vendor == "postgresql":
        rows = rows.select_for_update(skip_locked=True)
    claimed = list(rows[:limit])
    OutboxEvent.objects.filter(id__in=[e.id for e in claimed]).delete()
    return claimed


def _body(event: OutboxEvent) -> str:
    payload = {
        "type": event.topic,
        "timestamp": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "data": event.data,
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


def outbox_dispatch(*, limit: int = 1000) -> int:
    """Turn every published event into a message and its deliveries (an event no endpoint
    subscribes to leaves the outbox without one); returns the messages written. Safe to run
    twice or concurrently: claims are disjoint, and a message is unique per event."""
    written = 0
    while True:
        with transaction.atomic():
            events = _claim_outbox(limit)
            if not events:
                return written
            email_notifications_queue(events=events)  # before the events leave the outbox
            endpoints = list(WebhookEndpoint.objects.filter(active=True))
            for event in events:
                targets = [
                    e
                    for e in endpoints
                    if (not e.event_types or event.topic in e.event_types)
                    and (e.tenant_id is None or e.tenant_id == event.tenant_id)
                ]
                if not targets:  # nobody listens: the event is done with
                    continue
                message = WebhookMessage.objects.create(
                    msg_id=f"msg_{uuid.uuid4().hex}",
                    event_type=event.topic,
                    tenant_id=event.tenant_id,
                    body=_body(event),
                    outbox_event_id=event.id,
                )
                WebhookDelivery.objects.bulk_create(
                    WebhookDelivery(endpoint=e, message=message, next_attempt_at=message.created_at)
                    for e in targets
                )
                written += 1
            job_enqueue_on_commit(name=DELIVER_TASK)


@dataclass(frozen=True)
class _Try:
    delivery_id: UUID
    number: int
    url: str
    headers: dict[str, str]
    body: bytes


def _lease(limit: int, now: datetime) -> list[_Try]:
    with transaction.atomic():
        due = (
            WebhookDelivery.objects.filter(
                status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
            )
            .exclude(leased_until__gt=now)
            .order_by("next_attempt_at")
        )
        if connection.vendor == "postgresql":
            due = due.select_for_update(skip_locked=True, of=("self",))
        tries = []
        for delivery in due.select_related("endpoint", "message")[:limit]:
            endpoint, message = delivery.endpoint, delivery.message
            keys = [endpoint.secret]
            if endpoint.previous_secret and (
                endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now
            ):
                keys.append(endpoint.previous_secret)
            stamp = int(now.timestamp())
            headers = {
                "content-type": "application/json",
                "user-agent": "Percall-Webhooks/1",
                "webhook-id": message.msg_id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": signature_header(
                    secrets_=keys, msg_id=message.msg_id, timestamp=stamp, body=message.body
                ),
            }
            delivery.leased_until = now + LEASE
            delivery.save(update_fields=["leased_until"])
            tries.append(
                _Try(
                    delivery.id, delivery.attempts + 1, endpoint.url, headers, message.body.encode()
                )
            )
        return tries


@dataclass(frozen=True)
class _Answer:
    status: int | None
    body: str
    error: str
    retry_after: int | None
    duration_ms: int


def _post(attempt: _Try) -> _Answer:
    # Endpoint URLs are checked to be http(s) when saved (_url_check).
    request = urllib.request.Request(  # noqa: S310
        attempt.url, data=attempt.body, headers=attempt.headers
    )
    began = time.monotonic()
    status, body, error, retry_after = None, "", "", None
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            status, body = response.status, response.read(1000).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(1000).decode(errors="replace")
        header = exc.headers.get("retry-after")
        retry_after = int(header) if header and header.isdigit() else None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        error = str(getattr(exc, "reason", exc))[:300]
    return _Answer(status, body, error, retry_after, int((time.monotonic() - began) * 1000))


def _record(attempt: _Try, answer: _Answer, now: datetime) -> None:
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .get(id=attempt.delivery_id)
        )
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=attempt.number,
            status_code=answer.status,
            error=answer.error,
            response_body=answer.body,
            duration_ms=answer.duration_ms,
        )
        delivery.attempts = attempt.number
        delivery.last_status_code = answer.status
        delivery.leased_until = None
        if answer.status is not None and 200 <= answer.status < 300:
            delivery.status = WebhookDelivery.Status.SUCCEEDED
            delivery.next_attempt_at = None
        elif answer.status == 410:  # the receiver is gone for good
            delivery.status = WebhookDelivery.Status.FAILED
            delivery.next_attempt_at = None
            endpoint = delivery.endpoint
            endpoint.active = False
            endpoint.disabled_reason = f"answered 410 Gone at {now.isoformat()}"
            endpoint.save(update_fields=["active", "disabled_reason", "updated_at"])
        elif attempt.number > len(RETRY_SCHEDULE):
            delivery.status = WebhookDelivery.Status.FAILED
            delivery.next_attempt_at = None
        else:
            wait = RETRY_SCHEDULE[attempt.number - 1]
            wait = max(wait, answer.retry_after or 0)
            delivery.next_attempt_at = now + timedelta(seconds=wait)
        delivery.save()


def webhook_deliveries_run(*, limit: int = 100, now: datetime | None = None) -> int:
    """Try every due delivery once; returns the tries made."""
    made = 0
    while True:
        moment = now or timezone.now()
        tries = _lease(limit, moment)
        if not tries:
            return made
        for attempt in tries:
            _record(attempt, _post(attempt), now or timezone.now())
        made += len(tries)
        if now is not None:  # a pinned clock: one pass
            return made


@transaction.atomic
def webhook_redeliver(*, delivery_id: UUID) -> WebhookDelivery:
    """Try a delivery again now, whatever became of it (the log keeps every try)."""
    delivery = WebhookDelivery.objects.select_for_update().filter(id=delivery_id).first()
    if delivery is None:
        raise WebhookDeliveryNotFound(f"delivery {delivery_id} not found", field="id")
    delivery.status = WebhookDelivery.Status.PENDING
    delivery.next_attempt_at = timezone.now()
    delivery.leased_until = None
    delivery.save()
    job_enqueue_on_commit(name=DELIVER_TASK)
    return delivery


def webhook_endpoint_get(*, endpoint_id: Any, scope_tenant_id: UUID | None) -> WebhookEndpoint:
    rows = WebhookEndpoint.objects.all()
    if scope_tenant_id is not None:
        rows = rows.filter(tenant_id=scope_tenant_id)
    try:
        found = rows.filter(id=endpoint_id).first()
    except (ValueError, ValidationError):
        found = None
    if found is None:
        raise WebhookEndpointNotFound(f"webhook endpoint {endpoint_id} not found", field="id")
    return found
