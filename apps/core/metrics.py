"""Prometheus metrics, read from the database and the shared cache at scrape time.

Gunicorn and Celery run many processes, each with its own memory, so in-process counters would
each tell a part. Instead every figure is read where all processes write it: ingestion's batch
rows, the rollup queue, the webhook deliveries, and a task-failure counter per task in the
shared cache (Redis in production). One or two set-based queries per metric family.

Core sits below the apps it reports on (DESIGN.md's layers): it serves the registry and counts
task failures; each app registers the families read from its own tables
(``metric_family_register``, called from the app's ``ready()``).
"""

import hmac
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from celery import current_app
from celery.signals import task_failure
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

TASK_FAILURE_KEY = "percall:metrics:task-failures:{name}"
_discovery = threading.Lock()


# --- Task failures: counted in the shared cache by whichever worker saw them -------------------


@task_failure.connect(dispatch_uid="percall.metrics.task_failure")
def task_failure_count(sender: Any = None, **_: Any) -> None:
    """Adds one to the failing task's counter; atomic on Redis (INCR), so concurrent workers
    never lose a count. Never raises: counting must not mask the task's own failure."""
    name = getattr(sender, "name", None) or "unknown"
    key = TASK_FAILURE_KEY.format(name=name)
    try:
        cache.add(key, 0, timeout=None)  # no-op when it exists; incr needs the key
        cache.incr(key)
    except Exception:
        logger.exception("could not count the failure of task %s", name)


def _task_names() -> list[str]:
    with _discovery:  # autodiscovery is lazy until a worker starts, and not threadsafe
        names = [name for name in current_app.tasks if not name.startswith("celery.")]
        if not names:
            current_app.loader.import_default_modules()
            names = [name for name in current_app.tasks if not name.startswith("celery.")]
    return sorted(names)


def _task_failures() -> Iterator[Metric]:
    names = _task_names()
    counts = cache.get_many([TASK_FAILURE_KEY.format(name=name) for name in names])
    family = CounterMetricFamily(
        "percall_celery_task_failures",
        "Celery tasks that raised, by task name (since the cache was last emptied).",
        labels=["task"],
    )
    for name in names:
        family.add_metric([name], counts.get(TASK_FAILURE_KEY.format(name=name), 0))
    yield family


# Metric families by name. Core counts task failures; each app registers the families of
# its own tables from its AppConfig.ready() (metering: ingest, rollups; alerts: webhooks),
# so core reads nothing of the apps above it.
FAMILIES: dict[str, Callable[[], Iterable[Metric]]] = {"task_failures": _task_failures}


def metric_family_register(name: str, family: Callable[[], Iterable[Metric]]) -> None:
    """Add a family of metrics read at scrape time (one or two set-based queries)."""
    FAMILIES[name] = family


class PercallCollector(Collector):
    """Every family above; one that fails to read reports ``percall_metrics_scrape_error 1``
    instead of failing the whole scrape, so the others still arrive."""

    def collect(self) -> Iterator[Metric]:
        errors = GaugeMetricFamily(
            "percall_metrics_scrape_error",
            "1 when a metric family could not be read on this scrape.",
            labels=["family"],
        )
        for name, family in FAMILIES.items():
            try:
                metrics = list(family())
            except Exception:
                logger.exception("metric family %s could not be read", name)
                errors.add_metric([name], 1)
                continue
            errors.add_metric([name], 0)
            yield from metrics
        yield errors


registry = CollectorRegistry(auto_describe=False)
registry.register(PercallCollector())


def _authorized(request: HttpRequest) -> bool:
    token = settings.PERCALL_METRICS_TOKEN
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


@require_safe
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _authorized(request):
        response = HttpResponse("unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
