"""Celery signal hooks: one ``task.run`` event per task run, and the context carried along.

    from percall.integrations.celery import instrument
    instrument()            # in the module that makes your Celery app, producers and workers

When a task is sent, the current context (tenant, feature, workflow, team, user) and the
``traceparent`` of the current span go in a ``percall`` message header; the worker runs the
task inside that context, as a child span of the sender's, so what the task tracks (LLM calls,
HTTP calls) is attributed like the request that queued it.

The event: ``endpoint`` is the task name (the workflow's step), ``workflow`` the inherited one
or else the task name, ``attempt`` is Celery's retry count + 1, ``latency_ms`` the run's time,
and ``properties`` hold the final state (``celery.state``) and ``error.type`` on failure.
Celery is imported only by this module.
"""

from __future__ import annotations

import time
from typing import Any

from celery import signals

import percall
from percall._context import Scope, current_scope, enter_scope, exit_scope
from percall._ids import span_id as new_span_id
from percall._ids import trace_id as new_trace_id
from percall._ids import traceparent_parse
from percall.client import Percall

HEADER = "percall"
_CARRIED = ("tenant", "feature", "workflow", "team", "user")


class _Hooks:
    def __init__(self, client: Percall | None, event_type: str) -> None:
        self.client = client
        self.event_type = event_type
        self.running: dict[str, tuple[Any, Scope, float]] = {}  # task id -> token, scope, start
        self.failures: dict[str, str] = {}  # task id -> exception type, until its postrun

    def publish(self, headers: dict[str, Any] | None = None, **_: Any) -> None:
        if headers is None:
            return
        scope = current_scope()
        carried: dict[str, Any] = {
            k: scope.attributes[k] for k in _CARRIED if scope.attributes.get(k) is not None
        }
        traceparent = scope.traceparent()
        if traceparent is not None:
            carried["traceparent"] = traceparent
        if carried:
            headers[HEADER] = carried

    def prerun(self, task_id: str | None = None, task: Any = None, **_: Any) -> None:
        if task_id is None:
            return
        request = getattr(task, "request", None)
        carried = getattr(request, HEADER, None)
        if not isinstance(carried, dict):
            carried = (getattr(request, "headers", None) or {}).get(HEADER)
        outer = current_scope()
        attributes = dict(outer.attributes)
        parent_trace = outer.traceparent()
        if isinstance(carried, dict):
            attributes.update({k: carried[k] for k in _CARRIED if carried.get(k) is not None})
            parent_trace = carried.get("traceparent") or parent_trace
        incoming = traceparent_parse(parent_trace)
        if incoming is None:
            scope = Scope(attributes, new_trace_id(), new_span_id(), None)
        else:
            scope = Scope(attributes, incoming[0], new_span_id(), incoming[1])
        self.running[task_id] = (enter_scope(scope), scope, time.perf_counter())

    def postrun(
        self, task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
    ) -> None:
        entry = self.running.pop(task_id or "", None)
        if entry is None:
            return
        token, scope, started = entry
        try:
            exit_scope(token)
        except ValueError:  # reset from another context (should not happen): leave it
            pass
        client = self.client or percall.get_client()
        if client is None:
            return
        name = getattr(task, "name", None) or "task"
        request = getattr(task, "request", None)
        retries = getattr(request, "retries", 0) or 0
        extra: dict[str, Any] = {"celery.state": state, "celery.task_id": task_id}
        if state not in (None, "SUCCESS"):
            failure = self.failures.pop(task_id or "", None)
            if failure is not None:
                extra["error.type"] = failure
        token = enter_scope(scope)
        try:
            client.track(
                self.event_type,
                trace_id=scope.trace_id,
                span_id=scope.span_id,
                parent_span_id=scope.parent_span_id,
                endpoint=name,
                workflow=scope.attributes.get("workflow") or name,
                attempt=retries + 1,
                latency_ms=(time.perf_counter() - started) * 1000,
                **extra,
            )
        finally:
            exit_scope(token)

    def failure(
        self, task_id: str | None = None, exception: BaseException | None = None, **_: Any
    ) -> None:
        if task_id is not None and exception is not None:
            self.failures[task_id] = type(exception).__qualname__


_installed: _Hooks | None = None


def instrument(*, client: Percall | None = None, event_type: str = "task.run") -> None:
    """Connect the signal handlers (once per process; a second call changes the client)."""
    global _installed
    if _installed is not None:
        _installed.client, _installed.event_type = client, event_type
        return
    hooks = _installed = _Hooks(client, event_type)
    signals.before_task_publish.connect(hooks.publish, weak=False)
    signals.task_prerun.connect(hooks.prerun, weak=False)
    signals.task_failure.connect(hooks.failure, weak=False)
    signals.task_postrun.connect(hooks.postrun, weak=False)
