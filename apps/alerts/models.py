"""Outbound webhooks, signed per Standard Webhooks.

An endpoint belongs to the operator (every tenant's events) or to one tenant (its own events
only) and subscribes to event types. Each outbox event becomes one ``WebhookMessage`` (its id
is the ``webhook-id``, stable across retries) and a ``WebhookDelivery`` per subscribed
endpoint; every try is a ``WebhookAttempt`` row, the delivery log.
"""

from django.db import models

from apps.core.models import BaseModel, ExternalModel
from apps.tenants.models import Tenant

EVENT_TYPES = (
    "invoice.finalized",
    "invoice.voided",
    "invoice.paid",
    "credits.low",
    "budget.threshold_crossed",
    "budget.resolved",
    "anomaly.detected",
    "leakage.detected",
    "statement.issued",
)


class WebhookEndpoint(ExternalModel):
    """Where events are sent. ``secret`` signs them (``whsec_`` + base64 of 32 random bytes);
    after a rotation the previous secret keeps signing too until ``previous_secret_expires_at``,
    so a receiver can switch without losing a message."""

    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, blank=True)  # empty: every type
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.url


class WebhookMessage(BaseModel):
    """One event as sent: ``msg_id`` is the ``webhook-id`` header, ``payload`` the body
    (``{"type", "timestamp", "data"}``), the same bytes on every try."""

    msg_id = models.CharField(max_length=40, unique=True)
    event_type = models.CharField(max_length=64)
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    body = models.TextField()  # the JSON payload exactly as signed and sent
    outbox_event_id = models.BigIntegerField(unique=True)  # one message per outbox event


class WebhookDelivery(ExternalModel):
    """One message to one endpoint, tried until a 2xx or the schedule runs out."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # every try failed, or the endpoint answered 410 (disabled)

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)  # a worker is trying it
    last_status_code = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "message"], name="webhook_delivery_uniq")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due")]


class WebhookAttempt(BaseModel):
    """One try of a delivery: the delivery log. Append-only."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    number = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)  # None: no answer
    error = models.CharField(max_length=300, blank=True)
    response_body = models.CharField(max_length=1000, blank=True)
    duration_ms = models.PositiveIntegerField()

    class Meta:
        ordering = ["delivery", "number"]
