"""Start a real Percall server for the end-to-end test and the bench.

The repository's own environment (``<repo>/.venv``, made by ``make install``) runs it: a fresh
SQLite database in a temporary directory is migrated, an operator API key is created with
``manage.py create_api_key``, and gunicorn serves ``config.wsgi`` on a free loopback port.
``PERCALL_SERVER_PYTHON`` names another interpreter.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    url: str
    api_key: str
    database: Path


class Unavailable(Exception):
    """The project's environment cannot run a server here (the reason says why)."""


def _python() -> str:
    python = os.environ.get("PERCALL_SERVER_PYTHON") or str(REPO / ".venv" / "bin" / "python")
    if not Path(python).exists():
        raise Unavailable(f"{python} not found: run `make install` at the repository root")
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(directory: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",  # embedded: SQLite, in-process tasks
        SQLITE_PATH=str(directory / "percall.sqlite3"),
        PYTHONDONTWRITEBYTECODE="1",
        LOG_LEVEL="WARNING",
    )
    return env


def _run(python: str, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [python, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def percall_server(workers: int = 1) -> Iterator[Server]:
    python = _python()
    probe = subprocess.run(
        [python, "-c", "import django, rest_framework, msgspec, gunicorn, config.settings.base"],
        cwd=REPO,
        env=_env(Path(tempfile.gettempdir())),
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        raise Unavailable(f"the project's environment is not importable: {probe.stderr[-300:]}")
    with tempfile.TemporaryDirectory(prefix="percall-e2e-") as tmp:
        directory = Path(tmp)
        env = _env(directory)
        _run(python, env, "migrate", "--noinput", "-v", "0")
        output = _run(
            python, env, "create_api_key", "--name", "sdk-e2e", "--scopes", "ingest,read,admin"
        )
        api_key = output.strip().splitlines()[-1].strip()
        port = free_port()
        log = (directory / "server.log").open("w")
        process = subprocess.Popen(
            [
                python,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError(
                        "the server did not start:\n" + (directory / "server.log").read_text()
                    )
                time.sleep(0.2)
            yield Server(url, api_key, directory / "percall.sqlite3")
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def tenant_create(server: Server, external_id: str) -> None:
    response = httpx.post(
        f"{server.url}/api/v1/tenants",
        headers={"Authorization": f"Bearer {server.api_key}"},
        json={
            "external_id": external_id,
            "name": external_id.title(),
            "currency": "USD",
            "timezone": "UTC",
            "tax_rate": "0",
        },
        timeout=30,
    )
    if response.status_code not in (200, 201):
        raise RuntimeError(f"tenant create: HTTP {response.status_code} {response.text}")


if __name__ == "__main__":  # a server to try the SDK against by hand
    with percall_server() as running:
        print(running.url, running.api_key, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    sys.exit(0)
