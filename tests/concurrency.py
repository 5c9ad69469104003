"""Running test code in real threads, each with its own database connection."""

import threading
from collections.abc import Callable

from django.db import connection


def run_together(*targets: Callable[[], object], timeout: float = 300) -> list[object]:
    """Start every target at once (a barrier) in its own thread and return their results in
    order. Each thread closes its connection; any exception is re-raised here as a failure."""
    results: list[object] = [None] * len(targets)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def runner(index: int, target: Callable[[], object]) -> None:
        try:
            barrier.wait()
            results[index] = target()
        except BaseException as exc:  # reported by the test thread below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=pair) for pair in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not errors, errors
    return results


def lock_waiters() -> int:
    """How many other connections to the test database are waiting for a lock (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else one view per transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> "
            "pg_backend_pid() AND datname = current_database()"
        )
        return cursor.fetchone()[0]
