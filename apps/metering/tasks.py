"""Thin Celery tasks over the metering services. Each may run twice or concurrently."""

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from apps.metering.services.partitions import event_partitions_ahead
from apps.metering.services.rollup import meter_rollups_rebuild, rollup_pending_run


@shared_task(name="metering.rollup_pending", time_limit=600, soft_time_limit=570)
def rollup_pending() -> int:
    return rollup_pending_run(batch_size=settings.PERCALL_ROLLUP_CLAIM_PAIRS)


@shared_task(name="metering.meter_rollups_rebuild", bind=True, time_limit=600, soft_time_limit=570)
def meter_rollups_rebuild_task(self, *, meter_id: int, after: str | None = None) -> str | None:
    """A chunk of hours per run; the task re-enqueues itself with where it stopped."""
    from datetime import datetime

    done = meter_rollups_rebuild(
        meter_id=meter_id, after=datetime.fromisoformat(after) if after else None
    )
    if done is not None:
        self.apply_async(kwargs={"meter_id": meter_id, "after": done.isoformat()})
    return None if done is None else done.isoformat()


@shared_task(name="metering.event_partitions_ensure", time_limit=120)
def event_partitions_ensure() -> list[str]:
    return event_partitions_ahead(now=timezone.now())
