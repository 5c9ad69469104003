"""Serve Percall with gunicorn on loopback and drive ``POST /api/v1/events`` from several clients.

The server is a subprocess in its own session, stopped on the way out whatever happens. Clients
are threads with one keep-alive ``http.client`` connection each; bodies are encoded beforehand,
so a client costs a send and a small JSON read per batch of 1,000 events.
"""

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

READY_TIMEOUT_S = 60
REQUEST_TIMEOUT_S = 300
STOP_TIMEOUT_S = 15


@dataclass(frozen=True)
class ServerConfig:
    workers: int = 2
    worker_class: str = "sync"  # "sync" or "gthread"
    threads: int = 1  # per worker, gthread only
    app: str = "config.wsgi:application"
    log_path: Path = Path("/tmp/percall-bench-gunicorn.log")  # overwritten by each run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait_ready(process: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log_tail(log_path)}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/api/v1/events")
            conn.getresponse().read()  # any HTTP answer (405, 401) means it serves
            return
        except OSError:
            time.sleep(0.2)
        finally:
            conn.close()
    raise RuntimeError(f"gunicorn not ready after {READY_TIMEOUT_S} s:\n{log_tail(log_path)}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)  # the session holds only this gunicorn
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def gunicorn_serving(*, env: dict[str, str], config: ServerConfig) -> Iterator[tuple[int, int]]:
    """Serve ``config.app`` on 127.0.0.1; yields (port, master pid)."""
    port = _free_port()
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        config.app,
        f"--bind=127.0.0.1:{port}",
        f"--workers={config.workers}",
        f"--worker-class={config.worker_class}",
        f"--threads={config.threads}",
        "--timeout=300",
        "--backlog=64",
        "--log-level=warning",
    ]
    with config.log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_ready(process, port, config.log_path)
        yield port, process.pid
    finally:
        _stop(process)


@dataclass
class SendResult:
    elapsed_s: float = 0.0
    accepted: int = 0
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


class _Summary(msgspec.Struct):
    accepted: int
    duplicates: int
    conflicts: int
    rejected: int


_summary_decoder = msgspec.json.Decoder(_Summary)


def batches_send(
    *, port: int, key: str, bodies: list[bytes], clients: int, path: str = "/api/v1/events"
) -> SendResult:
    """POST every body once, spread over ``clients`` concurrent keep-alive connections.
    The clock runs from the moment all clients are connected until the last answer."""
    result = SendResult()
    todo = iter(range(len(bodies)))
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

    def client() -> None:
        # No connect up front: http.client opens (and, after a sync worker's close, reopens)
        # the connection on the first request.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        start.wait()
        accepted, statuses = 0, Counter()
        try:
            while True:
                with lock:
                    index = next(todo, None)
                if index is None:
                    break
                conn.request("POST", path, body=bodies[index], headers=headers)
                response = conn.getresponse()
                data = response.read()
                statuses[response.status] += 1
                if response.status in (200, 207):
                    accepted += _summary_decoder.decode(data).accepted
                elif len(result.errors) < 5:
                    result.errors.append(f"{response.status}: {data[:300]!r}")
        except Exception as exc:  # reported, never hidden: the run then fails its count check
            result.errors.append(repr(exc))
        finally:
            conn.close()
            with lock:
                result.accepted += accepted
                result.statuses.update(statuses)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait(timeout=60)
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    result.elapsed_s = time.perf_counter() - began
    return result


def child_pids(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


_PG_AUX = ("checkpointer", "background writer", "walwriter", "wal writer")


def _postgres_pids(database: str) -> list[int]:
    """The server processes working for ``database``, plus the shared writers (WAL, buffers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() != "postgres":
                    continue
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if f" {database} " in title or title.rstrip().endswith(_PG_AUX):
                pids.append(int(entry.name))
    return pids


class CpuMeter:
    """CPU seconds spent between ``start`` and ``stop`` by gunicorn (master and workers), by the
    PostgreSQL processes serving ``database`` plus its WAL and buffer writers, and by this
    process (Linux /proc; empty elsewhere). Approximate: processes that exit in between (parallel
    query workers, short-lived backends) are missed, and other databases' load on the shared
    writers is counted."""

    def __init__(self, *, master_pid: int | None = None, database: str | None = None) -> None:
        self.master_pid = master_pid
        self.database = database
        self.available = Path("/proc/self/stat").exists()
        self.before: dict[str, float] = {}

    def _sample(self) -> dict[str, float]:
        own = os.times()
        sample = {"bench": own.user + own.system}
        if self.database is not None:
            sample["postgres"] = _cpu_seconds(_postgres_pids(self.database))
        if self.master_pid is not None:
            pids = [self.master_pid, *child_pids(self.master_pid)]
            sample["gunicorn"] = _cpu_seconds(pids)
        return sample

    def start(self) -> None:
        if self.available:
            self.before = self._sample()

    def stop(self) -> dict[str, float]:
        if not self.available:
            return {}
        after = self._sample()
        return {name: round(after[name] - self.before[name], 2) for name in after}
