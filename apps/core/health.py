"""Liveness and readiness probes for load balancers and orchestrators.

``/healthz`` says the process answers and does no I/O, so a slow database never gets a healthy
process restarted. ``/readyz`` says whether this process can serve: the database, the cache and
(when there is one) the broker each answer. Bodies name the checks and their outcomes only: no
hostnames, URLs or exception texts, since the endpoints are unauthenticated; the reason goes to
the log.
"""

import logging
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from kombu import Connection

logger = logging.getLogger(__name__)

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
# Seconds a broker check may take: a probe answers well within a typical 5 s probe timeout.
BROKER_TIMEOUT_SECONDS = 2


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def database_check() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def cache_check() -> None:
    # A key of our own per probe: concurrent probes never read each other's value.
    key = f"percall:readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=10)
    found = cache.get(key)
    cache.delete(key)
    if found != "1":
        raise RuntimeError("the cache did not return the value just set")


def broker_check() -> None:
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=BROKER_TIMEOUT_SECONDS) as broker:
        broker.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)


def _checks() -> dict[str, Callable[[], None] | None]:
    """Each check by name; None where it does not apply (no broker: tasks run in-process)."""
    return {
        "database": database_check,
        "cache": cache_check,
        "broker": broker_check if settings.CELERY_BROKER_URL else None,
    }


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, str] = {}
    for name, check in _checks().items():
        if check is None:
            results[name] = SKIPPED
            continue
        try:
            check()
        except Exception:
            # Any failure means not ready; the traceback (which may name hosts) is logged only.
            logger.exception("readiness check %s failed", name)
            results[name] = FAILED
        else:
            results[name] = OK
    failed = sorted(name for name, result in results.items() if result == FAILED)
    body = {"status": "unavailable" if failed else "ok", "checks": results, "failed": failed}
    return JsonResponse(body, status=503 if failed else 200)
