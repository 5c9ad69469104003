"""Thin Celery tasks over the chargeback services. Each may run twice or concurrently."""

from celery import shared_task

from apps.chargeback.services.statements import statement_period_last_closed, statements_run
from apps.costs.selectors import cost_period_parse


@shared_task(name="chargeback.statements_run", time_limit=1800, soft_time_limit=1740)
def statements_run_task(*, period: str | None = None) -> dict:
    """Draft the statements of ``period`` (YYYY-MM), by default the month last closed."""
    chosen = cost_period_parse(period) if period else statement_period_last_closed()
    return statements_run(period=chosen).as_dict()
