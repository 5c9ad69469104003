"""Request ids on every log record, and the one-JSON-object-per-line format production logs in.

No Django imports: logging is configured from the settings before the apps load. The request id
lives in a context variable, so it follows the request (or the Celery task) through every call
without being passed around; ``apps.core.middleware`` sets it for requests, the task signals
below for tasks run by a worker.
"""

import json
import logging
import re
import uuid
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from celery.signals import task_postrun, task_prerun

# '' outside any request or task (startup, management commands, beat).
request_id_var: ContextVar[str] = ContextVar("percall_request_id", default="")

# What we accept from a client or proxy: short and plain, so it cannot forge log lines or
# smuggle markup into a log viewer.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_accept(value: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token (1-64 of ``[A-Za-z0-9._-]``),
    else a new one (uuid4 hex), so a request traced at the proxy keeps its id here."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Puts the current request (or task) id on every record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Django logs a 4xx/5xx answer ("django.request") after the middleware has returned,
        # outside the request's context; its record carries the request, which carries the id.
        request = getattr(record, "request", None)
        record.request_id = request_id_var.get() or getattr(request, "percall_request_id", "")
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601 UTC), level, logger, message, request_id
    (null outside a request or task) and, when there is one, the exception's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "") or None,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: a message argument that is not JSON (a UUID, a Decimal) still logs.
        return json.dumps(entry, default=str, ensure_ascii=False)


# Task id -> the token that restores the id current before the task ran.
_task_tokens: dict[str, Token[str]] = {}


@task_prerun.connect(dispatch_uid="percall.request_id.task_prerun")
def _task_prerun(task_id: str | None = None, **_: Any) -> None:
    # A task run eagerly inside a request (no broker) logs under that request's id; a task on
    # a worker logs under its own task id.
    if task_id and not request_id_var.get():
        _task_tokens[task_id] = request_id_var.set(task_id)


@task_postrun.connect(dispatch_uid="percall.request_id.task_postrun")
def _task_postrun(task_id: str | None = None, **_: Any) -> None:
    token = _task_tokens.pop(task_id or "", None)
    if token is not None:
        request_id_var.reset(token)
