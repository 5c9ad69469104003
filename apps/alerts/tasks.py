"""Thin Celery tasks over the alerts services (webhooks, budgets, emails, anomalies, forecasts).
Each may run twice or concurrently."""

from celery import shared_task
from django.utils import timezone

from apps.alerts.services.anomalies import anomalies_detect
from apps.alerts.services.budgets.evaluate import budgets_evaluate
from apps.alerts.services.forecasts import forecasts_snapshot
from apps.alerts.services.notifications import email_notifications_send
from apps.alerts.services.pipeline import pipeline_lag_evaluate
from apps.alerts.services.webhooks import outbox_dispatch, webhook_deliveries_run


@shared_task(name="alerts.outbox_dispatch", time_limit=600, soft_time_limit=570)
def outbox_dispatch_task() -> int:
    return outbox_dispatch()


@shared_task(name="alerts.webhook_deliveries_run", time_limit=900, soft_time_limit=870)
def webhook_deliveries_run_task() -> int:
    return webhook_deliveries_run()


@shared_task(name="alerts.budgets_evaluate", time_limit=600, soft_time_limit=570)
def budgets_evaluate_task(budget_ids: list[str] | None = None) -> dict[str, int]:
    return budgets_evaluate(budget_ids=budget_ids).as_dict()


@shared_task(name="alerts.email_notifications_send", time_limit=600, soft_time_limit=570)
def email_notifications_send_task() -> int:
    return email_notifications_send()


@shared_task(name="alerts.anomalies_detect", time_limit=1800, soft_time_limit=1770)
def anomalies_detect_task() -> int:
    return len(anomalies_detect(as_of=timezone.now()))


@shared_task(name="alerts.forecasts_snapshot", time_limit=3600, soft_time_limit=3570)
def forecasts_snapshot_task() -> int:
    return len(forecasts_snapshot(made_on=timezone.now().date()))


@shared_task(name="alerts.pipeline_lag_evaluate", time_limit=120, soft_time_limit=100)
def pipeline_lag_evaluate_task() -> bool:
    """True while the rollup-lag alert is open."""
    return pipeline_lag_evaluate() is not None
