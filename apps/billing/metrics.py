"""Billing's Prometheus metrics: what the last raw-event retention run did, read from the
report it leaves in the shared cache (no query), registered by ``BillingConfig.ready()``."""

from collections.abc import Iterator

from django.core.cache import cache
from prometheus_client.core import GaugeMetricFamily, Metric

from apps.billing.services.retention import RETENTION_REPORT_KEY


def retention_metrics() -> Iterator[Metric]:
    report = cache.get(RETENTION_REPORT_KEY) or {}
    yield GaugeMetricFamily(
        "percall_retention_kept_old_events",
        "Raw events older than the retention still kept after the last purge run: not rolled "
        "up, not billed, or received after their period was priced (leakage evidence).",
        value=report.get("kept_older", 0),
    )
    yield GaugeMetricFamily(
        "percall_retention_deleted_events",
        "Raw events the last purge run deleted.",
        value=report.get("deleted", 0),
    )
