"""Alerts' Prometheus metrics (webhook deliveries), read from its own tables at scrape time and
registered into core's registry by ``AlertsConfig.ready()``."""

from collections.abc import Iterator

from django.db.models import Count, Q
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from apps.alerts.models import WebhookDelivery


def webhook_metrics() -> Iterator[Metric]:
    delivery = WebhookDelivery
    # Filtering on status first lets the (status, next_attempt_at) index skip succeeded rows,
    # which are nearly all of them.
    rows = delivery.objects.filter(status__in=["pending", "failed"]).aggregate(
        failed=Count("id", filter=Q(status="failed")),
        pending=Count("id", filter=Q(status="pending")),
        retrying=Count("id", filter=Q(status="pending", attempts__gt=0)),
    )
    yield CounterMetricFamily(
        "percall_webhook_deliveries_failed",
        "Webhook deliveries given up on (every try failed, or the endpoint answered 410).",
        value=rows["failed"],
    )
    yield GaugeMetricFamily(
        "percall_webhook_deliveries_pending",
        "Webhook deliveries not yet succeeded or given up on.",
        value=rows["pending"],
    )
    yield GaugeMetricFamily(
        "percall_webhook_deliveries_retrying",
        "Pending webhook deliveries whose earlier tries failed.",
        value=rows["retrying"],
    )
