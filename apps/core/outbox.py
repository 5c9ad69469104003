"""Publishing domain events: a row in the caller's transaction, and a dispatch kick after it
commits. See ``models.OutboxEvent``."""

from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from apps.core.jobs import job_enqueue_on_commit
from apps.core.models import OutboxEvent

DISPATCH_TASK = "alerts.outbox_dispatch"


def outbox_publish(*, topic: str, data: dict[str, Any], tenant_id: UUID | None) -> None:
    """Record ``topic`` with its JSON-ready ``data``; must run inside the transaction that
    makes the change it reports."""
    outbox_publish_many(events=[(topic, data, tenant_id)])


def outbox_publish_many(*, events: list[tuple[str, dict[str, Any], UUID | None]]) -> None:
    """Record many (topic, data, tenant id) events in one insert (a billing run's invoices)."""
    if not events:
        return
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox events are published inside the transaction that causes them")
    now = timezone.now()
    OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(topic=t, data=d, tenant_id=tenant, occurred_at=now)
            for t, d, tenant in events
        ],
        batch_size=2000,
    )
    job_enqueue_on_commit(name=DISPATCH_TASK, debounce_key="outbox-dispatch", debounce_seconds=1)
