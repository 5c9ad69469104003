"""The abstract base every Percall model stands on."""

import uuid

from django.db import models


class BaseModel(models.Model):
    """Creation and last-change times, kept by the database layer, never by callers."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class ExternalModel(BaseModel):
    """A model whose rows are visible outside Percall: addressed by a UUID, never a sequence."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)

    class Meta:
        abstract = True


class OutboxEvent(models.Model):
    """A domain event (``invoice.finalized``, ``statement.issued``...) written in the
    transaction that caused it, so it exists exactly when that change committed. Consumers in
    higher apps (outbound webhooks) claim rows; the apps that publish never know who listens.
    Append-only until claimed."""

    id = models.BigAutoField(primary_key=True)
    topic = models.CharField(max_length=64)
    tenant_id = models.UUIDField(null=True, blank=True)  # None: the operator's own event
    data = models.JSONField()
    occurred_at = models.DateTimeField()

    class Meta:
        db_table = "core_outbox_event"
