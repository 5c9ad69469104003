"""Watching Percall's own pipeline: a metering outage is not zero usage.

When usage waits in the rollup queue longer than ``PERCALL_ROLLUP_LAG_ALERT_SECONDS``, rollup
workers are down or behind. Billing already refuses to finalize a period whose usage is still
queued (``billing.services.invoices``); this raises the alarm: one open ``PipelineAlert``,
``pipeline.lagging`` to the operator's webhooks and emails (``PERCALL_OPERATOR_ALERT_EMAILS``),
and ``pipeline.recovered`` when the queue is back under the limit. Evaluated every minute by
beat; safe to run twice or concurrently (one open alert per kind, a unique constraint).
"""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.alerts.models import PipelineAlert
from apps.core.outbox import outbox_publish
from apps.metering.selectors import RollupLag, rollup_lag


def _payload(alert: PipelineAlert, lag: float) -> dict[str, Any]:
    return {
        "alert": {
            "id": str(alert.id),
            "kind": alert.kind,
            "status": alert.status,
            "opened_at": alert.opened_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
            "lag_seconds": int(lag),
            "peak_lag_seconds": alert.peak_lag_seconds,
            "limit_seconds": settings.PERCALL_ROLLUP_LAG_ALERT_SECONDS,
            "pending": alert.pending,
            "tenants": alert.tenants,
            "oldest_hour": alert.oldest_hour.isoformat() if alert.oldest_hour else None,
        }
    }


def _open(queue: RollupLag, lag: float, now: datetime) -> PipelineAlert | None:
    alert = PipelineAlert(
        kind=PipelineAlert.Kind.ROLLUP_LAG,
        opened_at=now,
        lag_seconds=int(lag),
        peak_lag_seconds=int(lag),
        pending=queue.pending,
        tenants=queue.tenants,
        oldest_hour=queue.oldest_hour,
    )
    alert.full_clean(validate_constraints=False)  # the unique constraint is the backstop
    try:
        with transaction.atomic():
            alert.save(force_insert=True)
    except IntegrityError:  # a concurrent evaluation opened it first
        return None
    outbox_publish(topic="pipeline.lagging", tenant_id=None, data=_payload(alert, lag))
    return alert


@transaction.atomic
def pipeline_lag_evaluate(*, now: datetime | None = None) -> PipelineAlert | None:
    """Open, update or resolve the rollup-lag alert from the queue as it stands; returns the
    alert that is open afterwards (None when the pipeline is healthy)."""
    now = now or timezone.now()
    queue = rollup_lag()
    lag = queue.seconds(now)
    limit = settings.PERCALL_ROLLUP_LAG_ALERT_SECONDS
    alert = (
        PipelineAlert.objects.select_for_update()
        .filter(kind=PipelineAlert.Kind.ROLLUP_LAG, status=PipelineAlert.Status.OPEN)
        .first()
    )
    if alert is None:
        return _open(queue, lag, now) if limit and lag > limit else None
    alert.pending, alert.tenants, alert.oldest_hour = (
        queue.pending,
        queue.tenants,
        queue.oldest_hour,
    )
    alert.peak_lag_seconds = max(alert.peak_lag_seconds, int(lag))
    if not limit or lag <= limit:
        alert.status = PipelineAlert.Status.RESOLVED
        alert.resolved_at = now
        outbox_publish(topic="pipeline.recovered", tenant_id=None, data=_payload(alert, lag))
    alert.save()
    return alert if alert.status == PipelineAlert.Status.OPEN else None
