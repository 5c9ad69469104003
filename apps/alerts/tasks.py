"""Thin Celery tasks over the webhook services. Each may run twice or concurrently."""

from celery import shared_task

from apps.alerts.services.webhooks import outbox_dispatch, webhook_deliveries_run


@shared_task(name="alerts.outbox_dispatch", time_limit=600, soft_time_limit=570)
def outbox_dispatch_task() -> int:
    return outbox_dispatch()


@shared_task(name="alerts.webhook_deliveries_run", time_limit=900, soft_time_limit=870)
def webhook_deliveries_run_task() -> int:
    return webhook_deliveries_run()
