"""Outbound webhooks, signed per Standard Webhooks.

An endpoint belongs to the operator (every tenant's events) or to one tenant (its own events
only) and subscribes to event types. Each outbox event becomes one ``WebhookMessage`` (its id
is the ``webhook-id``, stable across retries) and a ``WebhookDelivery`` per subscribed
endpoint; every try is a ``WebhookAttempt`` row, the delivery log.
"""

from typing import Any

from django.db import models
from django.db.models import F, Q

from apps.billing.models import CreditGrant
from apps.core.models import BaseModel, ExternalModel
from apps.metering.models import Meter
from apps.tenants.models import CostCenter, Tenant

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
    "pipeline.lagging",
    "pipeline.recovered",
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


# --- Budgets -----------------------------------------------------------------------------------

# Figures measured against budgets: money at 12 places (costs are sub-cent), usage in units.
FIGURE: dict[str, Any] = {"max_digits": 38, "decimal_places": 12}
THRESHOLDS_DEFAULT = [70, 90, 110]


def _thresholds_default() -> list[int]:
    return list(THRESHOLDS_DEFAULT)


class Budget(ExternalModel):
    """An amount a scope may reach in a period, with the thresholds (% of the amount) that
    alert when crossed. ``action`` says what happens at 110 % (the highest threshold at or
    above 100): notify only, or put the scope ``over_limit`` so that the limits check tells
    the operator's gateway to throttle or degrade it. Ingestion never drops events for it.

    Scope: ``tenant`` (that tenant's everything), ``cost_center``, or a ``feature``,
    ``workflow`` or ``endpoint`` named by ``scope_value``, across all tenants or narrowed to
    ``tenant`` when set."""

    class Scope(models.TextChoices):
        TENANT = "tenant"
        COST_CENTER = "cost_center"
        FEATURE = "feature"
        WORKFLOW = "workflow"
        ENDPOINT = "endpoint"

    class Measure(models.TextChoices):
        BILLED_AMOUNT = "billed_amount"  # invoiced + running draft, the tenant's currency
        COST = "cost"  # cost rollups, the operator's currency unless ``currency`` says
        USAGE = "usage"  # units of ``meter``
        CREDIT_CONSUMPTION = "credit_consumption"  # credits spent from packs and grants

    class Period(models.TextChoices):
        MONTHLY = "monthly"  # calendar months (UTC; a tenant scope: the tenant's timezone)
        CUSTOM = "custom"  # one period, [period_start, period_end)

    class Action(models.TextChoices):
        NOTIFY = "notify"
        THROTTLE = "throttle"
        DEGRADE = "degrade"

    name = models.CharField(max_length=200)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    cost_center = models.ForeignKey(
        CostCenter, null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    scope_value = models.CharField(max_length=200, blank=True)  # feature, workflow, endpoint
    measure = models.CharField(max_length=24, choices=Measure.choices)
    meter = models.ForeignKey(
        Meter, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    amount = models.DecimalField(**FIGURE)  # money in ``currency``, or units of ``meter``
    currency = models.CharField(max_length=3, blank=True)  # money measures only
    period = models.CharField(max_length=8, choices=Period.choices, default=Period.MONTHLY)
    period_start = models.DateField(null=True, blank=True)  # custom periods only
    period_end = models.DateField(null=True, blank=True)  # exclusive
    thresholds = models.JSONField(default=_thresholds_default)  # % of amount, ascending
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.NOTIFY)
    notify_emails = models.JSONField(default=list, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name", "created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="budget_amount_positive"),
            models.CheckConstraint(
                condition=Q(period="monthly")
                | Q(period_start__isnull=False, period_end__gt=F("period_start")),
                name="budget_custom_period_ordered",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class BudgetPeriod(BaseModel):
    """Where one budget stands in one period, as of the last evaluation: the state the
    crossings are computed against, and the source of the limits check."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="periods")
    period_start = models.DateField()
    period_end = models.DateField()  # exclusive
    measured = models.DecimalField(**FIGURE)
    percent = models.DecimalField(max_digits=12, decimal_places=2)
    forecast = models.DecimalField(**FIGURE, null=True, blank=True)  # at period end
    forecast_lower = models.DecimalField(**FIGURE, null=True, blank=True)
    forecast_upper = models.DecimalField(**FIGURE, null=True, blank=True)
    crossed = models.JSONField(default=list)  # thresholds at or below percent, ascending
    over_limit = models.BooleanField(default=False)
    drivers = models.JSONField(default=list)  # the top contributors, largest first
    evaluated_at = models.DateTimeField()

    class Meta:
        ordering = ["budget", "-period_start"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "period_start"], name="budget_period_uniq")
        ]
        indexes = [models.Index(fields=["over_limit"], name="budget_period_over_limit")]


class BudgetAlert(ExternalModel):
    """A threshold crossed (or fallen back below: ``resolved``) in one period. Each fires at
    most once per budget, period and threshold; the unique constraint makes it so however
    many evaluations run at once. Append-only."""

    class Kind(models.TextChoices):
        CROSSED = "threshold_crossed"
        RESOLVED = "resolved"

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateField()
    period_end = models.DateField()
    threshold = models.PositiveIntegerField()  # %
    kind = models.CharField(max_length=20, choices=Kind.choices)
    measured = models.DecimalField(**FIGURE)
    percent = models.DecimalField(max_digits=12, decimal_places=2)
    forecast = models.DecimalField(**FIGURE, null=True, blank=True)
    drivers = models.JSONField(default=list)
    fired_at = models.DateTimeField()

    class Meta:
        ordering = ["-fired_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start", "threshold", "kind"], name="budget_alert_once"
            )
        ]


class CreditAlert(ExternalModel):
    """A credit grant (a pack bought, or credits granted) consumed past ``threshold`` %
    (80 by default). Fires once per grant and threshold. Append-only."""

    grant = models.ForeignKey(CreditGrant, on_delete=models.CASCADE, related_name="alerts")
    threshold = models.PositiveIntegerField()  # %
    consumed_percent = models.DecimalField(max_digits=7, decimal_places=2)
    remaining_amount = models.DecimalField(**FIGURE)
    projected_depletion_on = models.DateField(null=True, blank=True)  # None: not in sight
    fired_at = models.DateTimeField()

    class Meta:
        ordering = ["-fired_at"]
        constraints = [
            models.UniqueConstraint(fields=["grant", "threshold"], name="credit_alert_once")
        ]


class EmailNotification(BaseModel):
    """One email sent for one outbox event to one address (budget and invoice events), so a
    re-run of the sender never mails twice."""

    outbox_event_id = models.BigIntegerField()
    topic = models.CharField(max_length=64)
    to = models.EmailField()
    subject = models.CharField(max_length=300)
    body = models.TextField(default="")  # rendered when queued: the outbox row is gone later
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)  # tries so far; gives up after a few
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["outbox_event_id", "to"], name="email_once_per_event")
        ]


# --- Anomalies and forecasts -------------------------------------------------------------------


class Anomaly(ExternalModel):
    """An hour of a series (a tenant, or a feature or endpoint, of one tenant or across all)
    whose figure left its robust baseline (median and MAD of the same hour of week over the
    last 4 weeks, or of a rolling window where history is short). ``cause_dimension`` and
    ``cause_value`` name what moved most (a model, workflow, environment or deployment tag).
    One row per series, kind and hour: detecting again updates it."""

    class Kind(models.TextChoices):
        COST_JUMP = "cost_jump"  # cost per call up without matching traffic growth
        TRAFFIC_SPIKE = "traffic_spike"  # calls per hour
        AMPLIFICATION_JUMP = "amplification_jump"  # calls per workflow run
        TOKENS_JUMP = "tokens_jump"  # tokens per request
        RETRY_STORM = "retry_storm"  # retries per call

    class Scope(models.TextChoices):
        TENANT = "tenant"
        FEATURE = "feature"
        ENDPOINT = "endpoint"

    class Status(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"
        RESOLVED = "resolved"

    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="anomalies"
    )
    scope = models.CharField(max_length=16, choices=Scope.choices)
    scope_value = models.CharField(max_length=200, blank=True)  # feature or endpoint
    kind = models.CharField(max_length=24, choices=Kind.choices)
    hour = models.DateTimeField()  # start of the hour judged (UTC)
    observed = models.DecimalField(**FIGURE)
    baseline_median = models.DecimalField(**FIGURE)
    baseline_mad = models.DecimalField(**FIGURE)
    baseline_method = models.CharField(max_length=16)  # hour_of_week or rolling
    score = models.DecimalField(max_digits=18, decimal_places=4)  # robust z-score
    cause_dimension = models.CharField(max_length=32, blank=True)
    cause_value = models.CharField(max_length=200, blank=True)
    evidence = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    detected_at = models.DateTimeField()

    class Meta:
        ordering = ["-hour", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "scope", "scope_value", "kind", "hour"],
                condition=Q(tenant__isnull=False),
                name="anomaly_once_per_tenant_series",
            ),
            models.UniqueConstraint(
                fields=["scope", "scope_value", "kind", "hour"],
                condition=Q(tenant__isnull=True),
                name="anomaly_once_per_operator_series",
            ),
        ]
        indexes = [models.Index(fields=["status", "hour"], name="anomaly_status_hour")]


class ForecastSnapshot(BaseModel):
    """A forecast of one measure to the end of one period for one scope, as made on
    ``made_on`` from whole days before it. Kept, never updated except to record the
    ``actual`` once the period has closed, which is what accuracy (MAPE) is measured on."""

    class Scope(models.TextChoices):
        TOTAL = "total"
        TENANT = "tenant"
        COST_CENTER = "cost_center"
        FEATURE = "feature"

    class Measure(models.TextChoices):
        COST = "cost"
        REVENUE = "revenue"  # billed: invoices and running drafts

    scope = models.CharField(max_length=16, choices=Scope.choices)
    scope_key = models.CharField(max_length=200, blank=True)  # external id, code or feature
    measure = models.CharField(max_length=16, choices=Measure.choices)
    currency = models.CharField(max_length=3)
    period_start = models.DateField()
    period_end = models.DateField()  # exclusive
    made_on = models.DateField()
    actual_to_date = models.DecimalField(**FIGURE)
    forecast = models.DecimalField(**FIGURE)  # the whole period's total
    lower = models.DecimalField(**FIGURE)
    upper = models.DecimalField(**FIGURE)
    method = models.CharField(max_length=24)  # holt_winters, seasonal_naive, run_rate
    actual = models.DecimalField(**FIGURE, null=True, blank=True)

    class Meta:
        ordering = ["-made_on", "scope", "scope_key"]
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "scope_key", "measure", "period_start", "made_on"],
                name="forecast_snapshot_uniq",
            )
        ]
        indexes = [models.Index(fields=["period_start", "measure"], name="forecast_period")]


# --- The pipeline's own health ---------------------------------------------------------------


class PipelineAlert(ExternalModel):
    """Percall's own data pipeline is behind: usage waits in the rollup queue longer than
    ``PERCALL_ROLLUP_LAG_ALERT_SECONDS``. While it is open, invoices of the affected tenants'
    periods wait (billing finalizes none whose usage is still queued) and the operator is told;
    it resolves itself when the queue is back under the limit. At most one open per kind."""

    class Kind(models.TextChoices):
        ROLLUP_LAG = "rollup_lag"

    class Status(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"

    kind = models.CharField(max_length=24, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    lag_seconds = models.PositiveIntegerField()  # when opened
    peak_lag_seconds = models.PositiveIntegerField()  # the worst seen while open
    pending = models.PositiveIntegerField()  # queued (tenant, hour) rows, when last evaluated
    tenants = models.PositiveIntegerField()  # tenants with queued usage, when last evaluated
    oldest_hour = models.DateTimeField(null=True, blank=True)  # the earliest hour waiting

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"], condition=Q(status="open"), name="pipeline_alert_one_open"
            )
        ]
