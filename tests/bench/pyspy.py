"""Optional sampling of the gunicorn workers with py-spy while the timed ingest runs.

``BENCH_PYSPY=/some/dir make bench`` records each worker (``py-spy record --idle --format raw``,
wall-clock samples, so waits on PostgreSQL show) into ``worker-<pid>.txt`` there and prints a
summary to stderr. ``python -m tests.bench.pyspy FILE...`` summarises recordings again. py-spy is
not a dependency: ``.venv/bin/pip install py-spy`` first (it needs ptrace rights).
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_INGEST = ("events_ingest", "services/ingest.py")
_DB_WAIT = ("wait", "psycopg/connection.py")
_PYTHON = "events_ingest in Python (not waiting on the DB)"
# (label, function name, file fragment): wall-clock share of samples with that frame on the stack.
FRAMES = (
    ("request handled (WSGI)", "handle_request", "gunicorn/workers/sync.py"),
    ("  API key authentication", "authenticate", "tenants/api/authentication.py"),
    ("  events_ingest", *_INGEST),
    ("    decode (msgspec)", "_events_decode", "services/ingest.py"),
    ("    tenant lookup", "tenant_ids_by_external_id", "tenants/selectors.py"),
    ("    event_normalize (checks)", "event_normalize", "services/event_schema.py"),
    ("    payload hash", "_payload_hash", "services/ingest.py"),
    ("    store: COPY + append statement", "_store", "services/ingest.py"),
    ("      COPY write_row", "write_row", "psycopg/"),
    ("    record: batch, tallies, marks", "_record", "services/ingest.py"),
    ("      first-call updates", "tenant_first_calls_record", "tenants/services/tenants.py"),
    ("    commit", "commit", "psycopg/connection.py"),
    ("  waiting on PostgreSQL (any statement)", *_DB_WAIT),
    ("reading the request (socket)", "read", "gunicorn/http/body.py"),
    ("idle: waiting for a request", "wait", "gunicorn/workers/sync.py"),
)

_RECORD_OPTIONS = ("--idle", "--nonblocking", "--format", "raw", "--rate", "50")


def _frame_matches(frame: str, name: str, fragment: str) -> bool:
    # A raw frame reads "Class.function (path/to/file.py:line)".
    function, _, where = frame.partition(" (")
    return (function == name or function.endswith(f".{name}")) and fragment in where


def _matches(frames: list[str], name: str, fragment: str) -> bool:
    return any(_frame_matches(frame, name, fragment) for frame in frames)


def summarize(paths: list[Path]) -> str:
    """Percent of all samples (wall clock, idle included) under each frame of ``FRAMES``."""
    totals: dict[str, int] = defaultdict(int)
    samples = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frames = stack.split(";")
            samples += int(count)
            for label, name, fragment in FRAMES:
                if _matches(frames, name, fragment):
                    totals[label] += int(count)
            if _matches(frames, *_INGEST) and not _matches(frames, *_DB_WAIT):
                totals[_PYTHON] += int(count)
    if not samples:
        return "py-spy: no samples"
    lines = [f"py-spy: {samples:,} samples over {len(paths)} worker(s), share of wall clock:"]
    labels = [label for label, _, _ in FRAMES] + [_PYTHON]
    lines += [f"  {label:<48} {totals[label] * 100 / samples:5.1f} %" for label in labels]
    return "\n".join(lines)


@contextmanager
def workers_recorded(worker_pids: list[int]) -> Iterator[None]:
    """Record ``worker_pids`` with py-spy for the duration of the block, if BENCH_PYSPY is set."""
    target = os.environ.get("BENCH_PYSPY")
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not target:
        yield
        return
    if not Path(binary).exists():
        raise SystemExit("bench: BENCH_PYSPY is set but py-spy is not installed")
    Path(target).mkdir(parents=True, exist_ok=True)
    outputs = [Path(target) / f"worker-{pid}.txt" for pid in worker_pids]
    recorders = [
        subprocess.Popen(
            [binary, "record", "--pid", str(pid), *_RECORD_OPTIONS, "--output", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, out in zip(worker_pids, outputs, strict=True)
    ]
    time.sleep(1)  # let py-spy attach before the clock starts
    try:
        yield
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for recorder in recorders:
            recorder.wait(30)
        print(summarize([p for p in outputs if p.exists()]), file=sys.stderr)


if __name__ == "__main__":
    print(summarize([Path(arg) for arg in sys.argv[1:]]))
