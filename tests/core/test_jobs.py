import pytest
from celery import current_app
from django.conf import settings as django_settings

from apps.core.jobs import job_enqueue_on_commit
from apps.metering import tasks as metering_tasks

BROKER = django_settings.CELERY_BROKER_URL_FOR_WORKER_TESTS
needs_redis = pytest.mark.skipif(
    not BROKER.startswith("redis"), reason="needs a Redis broker: set CELERY_BROKER_URL=redis://..."
)


def test_in_process_mode_runs_the_task_when_the_transaction_commits(
    db, monkeypatch, django_capture_on_commit_callbacks
):
    calls = []
    monkeypatch.setattr(metering_tasks, "rollup_pending_run", lambda **kw: calls.append(kw) or 0)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job_enqueue_on_commit(name="metering.rollup_pending")
        assert calls == []  # nothing runs before commit
    for callback in callbacks:
        callback()
    assert calls == [{"batch_size": django_settings.PERCALL_ROLLUP_CLAIM_PAIRS}]


@needs_redis
def test_with_a_broker_a_burst_of_enqueues_sends_one_message_to_the_queue(
    db, settings, django_capture_on_commit_callbacks
):
    import redis

    settings.CELERY_TASK_ALWAYS_EAGER = False
    previous = (current_app.conf.broker_url, current_app.conf.task_always_eager)
    current_app.conf.broker_url, current_app.conf.task_always_eager = BROKER, False
    client = redis.Redis.from_url(BROKER)
    client.delete("rollups")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            for _ in range(5):
                job_enqueue_on_commit(
                    name="metering.rollup_pending", debounce_key="test-burst", debounce_seconds=30
                )
        assert client.llen("rollups") == 1
    finally:
        client.delete("rollups")
        current_app.conf.broker_url, current_app.conf.task_always_eager = previous
