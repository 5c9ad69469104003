"""Thin Celery tasks over the assurance services. Each may run twice or concurrently: a scan
upserts its findings by (category, tenant, month, subject)."""

from celery import shared_task
from django.utils import timezone

from apps.assurance.selectors import leakage_period_parse, leakage_report
from apps.assurance.services.scans import leakage_scan
from apps.core.periods import month_add


@shared_task(name="assurance.leakage_scan", time_limit=3600, soft_time_limit=3540)
def leakage_scan_task(*, period: str | None = None) -> dict[str, dict]:
    """Scan ``period`` (YYYY-MM); by default the current month and the last closed one, since
    late events and billing runs keep changing the month that just closed."""
    if period:
        months = [leakage_period_parse(period)]
    else:
        current = month_add(timezone.now().date(), 0)
        months = [month_add(current, -1), current]
    counts = {}
    for month in months:
        counts[f"{month:%Y-%m}"] = leakage_scan(period_start=month).counts
        leakage_report(period_start=month)  # warm the cache the finance console reads
    return counts
