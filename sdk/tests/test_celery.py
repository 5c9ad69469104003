"""The Celery hooks: one event per task run, the sender's context carried in a header."""

from __future__ import annotations

import pytest

celery = pytest.importorskip("celery", reason="Celery is not installed")

import percall
from percall.integrations.celery import HEADER, instrument


@pytest.fixture
def app(client):
    app = celery.Celery("t", set_as_current=False)
    app.conf.task_always_eager = True
    instrument(client=client)
    yield app
    instrument(client=None)


def test_one_event_per_task_run_with_the_task_name_as_step(server, app, client):
    @app.task(name="reports.build")
    def build(n):
        client.track("llm.call", input_tokens=n)
        return n

    with percall.context(tenant="globex", workflow="monthly-report", new_span=True) as sender:
        assert build.apply(args=(5,)).get() == 5

    llm, task = server.stored
    assert task["type"] == "task.run" and task["endpoint"] == "reports.build"
    assert task["workflow"] == "monthly-report" and task["tenant"] == "globex"
    assert task["attempt"] == 1 and task["properties"]["celery.state"] == "SUCCESS"
    assert task["parent_span_id"] == sender.span_id
    assert llm["parent_span_id"] == task["span_id"] and llm["tenant"] == "globex"


def test_a_failed_task_records_its_error(server, app):
    @app.task(name="reports.fail")
    def fail():
        raise KeyError("x")

    fail.apply()
    (event,) = server.stored
    assert event["properties"]["celery.state"] == "FAILURE"
    assert event["properties"]["error.type"] == "KeyError"
    assert event["workflow"] == "reports.fail"  # no inherited workflow: the task is its own


def test_the_context_travels_in_a_message_header(server, app):
    hooks = __import__("percall.integrations.celery", fromlist=["_installed"])._installed
    headers: dict = {}
    with percall.context(tenant="globex", feature="digest", new_span=True) as sender:
        hooks.publish(headers=headers)
    assert headers[HEADER] == {
        "tenant": "globex",
        "feature": "digest",
        "traceparent": sender.traceparent(),
    }

    @app.task(name="digest.send")
    def send():
        return None

    send.apply(headers=headers)  # a worker: no context but the header's
    (event,) = server.stored
    assert event["tenant"] == "globex" and event["feature"] == "digest"
    assert event["trace_id"] == sender.trace_id and event["parent_span_id"] == sender.span_id
