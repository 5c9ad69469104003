"""Thin Celery tasks over the metering services. Each may run twice or concurrently."""

from celery import shared_task
from django.utils import timezone

from apps.metering.services.partitions import event_partitions_ahead
from apps.metering.services.rollup import rollup_pending_run


@shared_task(name="metering.rollup_pending", time_limit=600, soft_time_limit=570)
def rollup_pending() -> int:
    return rollup_pending_run()


@shared_task(name="metering.event_partitions_ensure", time_limit=120)
def event_partitions_ensure() -> list[str]:
    return event_partitions_ahead(now=timezone.now())
