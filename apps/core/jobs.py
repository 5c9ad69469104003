"""The one way services start background work: by task name, after the transaction commits.

Services never import tasks (STYLE 12). Without a broker (the embedded default) Celery runs the
task in-process when the transaction commits; with one, the task goes to a worker.
"""

import threading
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

_discovery = threading.Lock()


def job_enqueue_on_commit(
    *,
    name: str,
    kwargs: dict[str, Any] | None = None,
    debounce_key: str | None = None,
    debounce_seconds: int = 0,
) -> None:
    """Send task ``name`` once the current transaction commits (at once outside one).

    With ``debounce_key``, at most one such send per ``debounce_seconds`` across all processes
    sharing the cache, delayed by that long so it covers the whole burst. The task itself must be
    idempotent and find its own work, since the debounced sends of a burst collapse into one.
    """

    def send() -> None:
        if debounce_key and not settings.CELERY_TASK_ALWAYS_EAGER:
            if not cache.add(f"job-debounce:{debounce_key}", 1, timeout=debounce_seconds):
                return
            current_app.send_task(name, kwargs=kwargs or {}, countdown=debounce_seconds)
            return
        if settings.CELERY_TASK_ALWAYS_EAGER:
            with _discovery:  # autodiscovery is lazy until a worker starts, and not threadsafe
                if name not in current_app.tasks:
                    current_app.loader.import_default_modules()
            current_app.tasks[name].apply(kwargs=kwargs or {}).get()
        else:
            current_app.send_task(name, kwargs=kwargs or {})

    transaction.on_commit(send)
