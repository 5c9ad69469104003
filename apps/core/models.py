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


class AuditEntry(models.Model):
    """One money or configuration action: who (``actor``), what (``action`` on a target),
    for which tenant, and the values before and after. Append-only, and enforced so: on
    PostgreSQL a trigger refuses UPDATE and DELETE; on SQLite, UPDATE. No foreign keys, so that
    deleting a user, a key or a tenant can neither cascade into the log nor be blocked by it."""

    id = models.BigAutoField(primary_key=True)
    occurred_at = models.DateTimeField(db_index=True)
    actor = models.CharField(max_length=200)  # user:<name>, api-key:<prefix>, task:<name>, system
    action = models.CharField(max_length=64)  # <entity>.<verb>: invoice.finalize, api_key.create
    tenant_id = models.UUIDField(null=True, blank=True)  # None: operator-wide configuration
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        db_table = "core_audit_entry"
        indexes = [
            models.Index(fields=["tenant_id", "occurred_at"], name="audit_tenant_time"),
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
        ]
