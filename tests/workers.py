"""Real Celery workers (and gunicorn) as subprocesses on the test database, for crash and load
tests: start one, watch the database, kill it with SIGKILL as a lost machine would die.

The subprocesses read the test database's name from ``settings.DATABASES`` at test time (the
test run created it), so a test's data must be committed (``django_db(transaction=True)``) for
them to see it. Tests using these carry the ``worker`` marker: they run only on PostgreSQL with
a Redis broker (tests/conftest.py skips them otherwise, saying why).
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BROKER = settings.CELERY_BROKER_URL_FOR_WORKER_TESTS
# What Redis holds for the worker tests: the queues the tasks are routed to, and kombu's
# record of delivered but unacknowledged messages (where a killed worker's task waits).
BROKER_KEYS = ("default", "rollups", "billing", "pdfs", "webhooks")
UNACKED_KEYS = ("unacked", "unacked_index", "unacked_mutex")


def test_database_url() -> str:
    """The URL of the database this test run uses (``test_<name>``), for a subprocess."""
    db = settings.DATABASES["default"]
    auth = quote(db.get("USER") or "postgres")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    host = f"{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
    return f"postgres://{auth}@{host}/{db['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a worker or server: production-like settings on the test database
    and the test broker, with a broker visibility timeout of seconds instead of hours so that
    a killed worker's task comes back within the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        DEBUG="false",
        DATABASE_URL=test_database_url(),
        CELERY_BROKER_URL=BROKER,
        REDIS_URL=BROKER,
        CELERY_BROKER_VISIBILITY_TIMEOUT="3",
        CELERY_BROKER_RESTORE_SECONDS="1",
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


def broker_clean() -> None:
    """Empty the test broker's queues and unacknowledged messages (tasks that later work
    enqueues, such as PDF renders, are left for no worker here)."""
    import redis

    redis.Redis.from_url(BROKER).delete(*BROKER_KEYS, *UNACKED_KEYS)


def broker_unacked(task: str) -> int:
    """Messages of ``task`` delivered to a worker and not acknowledged: held by a running
    task, or left by a killed worker until the visibility timeout gives them back."""
    import redis

    held = redis.Redis.from_url(BROKER).hvals("unacked")
    return sum(1 for raw in held if json.loads(raw)[0]["headers"].get("task") == task)


def task_send(name: str, **kwargs: object) -> None:
    """Put a task on the broker by name, as beat or ``job_enqueue_on_commit`` does (the test
    settings' eager mode does not apply to ``send_task``, which says so in a warning)."""
    from celery import current_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        current_app.send_task(name, kwargs=kwargs)


def broker_queued(queue: str) -> int:
    """Messages waiting on ``queue``, not yet delivered to any worker."""
    import redis

    return int(redis.Redis.from_url(BROKER).llen(queue))


class Worker:
    """``celery -A config worker`` with one pool process (``concurrency``) taking one message
    at a time."""

    def __init__(self, *, queues: str, concurrency: int = 1, **env: str) -> None:
        self.queues, self.concurrency = queues, concurrency
        self.env = subprocess_env(**env)
        self.log = Path(tempfile.mkstemp(prefix="percall-worker-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Worker":
        command = [
            str(BIN / "celery"), "-A", "config", "worker", "-Q", self.queues, "--pool", "prefork",
            "--concurrency", str(self.concurrency), "--prefetch-multiplier", "1",
            "--without-heartbeat", "--without-gossip", "--without-mingle",
            "-n", f"test-{uuid.uuid4().hex[:8]}@%h", "--loglevel", "INFO",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            # A session of its own: the kill takes the main process and its pool child at
            # once, as when the machine or container dies.
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return self

    def kill(self) -> None:
        """SIGKILL to the main process and its pool child: no cleanup, no ack, no rollback
        but the database's own when the connection drops."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def kill_pool_child(self) -> None:
        """SIGKILL to the pool process running the task only (the OOM killer's usual victim):
        the main process survives and sees its child lost."""
        assert self.process is not None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert children, "the worker has no pool process"
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGKILL)

    def stop(self) -> None:
        """A warm shutdown (SIGTERM), killed if it takes more than 10 s."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None

    def close(self) -> None:
        """Kill the worker if it still runs and delete its log (failures quote its tail)."""
        self.kill()
        self.log.unlink(missing_ok=True)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def wait_for(
    condition: Callable[[], object], *, timeout: float, what: str, every: float = 0.05
) -> object:
    """Poll ``condition`` until it is truthy (its value is returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
