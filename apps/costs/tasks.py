"""Thin Celery tasks over the cost services. Each may run twice or concurrently."""

from celery import shared_task

from apps.costs.services.rollup import cost_days_reprice, cost_rollup_pending_run


@shared_task(name="costs.cost_rollup_pending", time_limit=1800, soft_time_limit=1740)
def cost_rollup_pending() -> int:
    return cost_rollup_pending_run()


@shared_task(name="costs.cost_days_reprice", time_limit=1800, soft_time_limit=1740)
def cost_days_reprice_task() -> int:
    return cost_days_reprice()
