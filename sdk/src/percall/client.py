"""The client: ``track()`` appends to an in-memory queue; a background thread sends batches.

The caller's cost is one context read, one clock read and one ``deque.append`` (thread-safe in
CPython without a lock). Everything else (ids, timestamps, merging the context's attributes,
JSON) happens on the flush thread. When the queue is full, new events are dropped and counted:
the app is never blocked and its memory stays bounded.

Delivery: a batch is encoded once and resent unchanged on network errors, 5xx and 429 (with
exponential backoff and full jitter, or the server's ``Retry-After``). Its ids were made on the
client, so a batch the server stored but whose answer was lost is a ``duplicate`` on the retry,
never counted twice. Rejected and conflicting events are logged with their codes and counted,
never retried: sending them again would give the same answer.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from percall._context import Scope, current_scope, enter_scope, exit_scope
from percall._encode import Encoder, batch_body

log = logging.getLogger("percall")

MAX_BATCH_EVENTS = 5000  # the server's limit per request
MAX_BODY_BYTES = 5 * 1024 * 1024  # the server's limit per request
_BODY_BUDGET = MAX_BODY_BYTES - 64 * 1024  # headroom for the envelope
_now = time.time


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class Percall:
    """A Percall client. Thread-safe; make one per process and share it.

    ``batch_size`` events or ``flush_interval`` seconds, whichever comes first, make a batch.
    ``max_queue`` bounds the events held in memory. ``sync=True`` sends each event before
    ``track()`` returns (scripts, tests). ``defaults`` (and ``service`` / ``environment``) are
    attributes of every event; the context's and the call's own attributes override them.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        service: str | None = None,
        environment: str | None = None,
        defaults: dict[str, Any] | None = None,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        sync: bool = False,
        max_retries: int = 8,
        backoff_base: float = 0.25,
        backoff_max: float = 30.0,
        retry_after_max: float = 120.0,
        timeout: float = 10.0,
        shutdown_timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch_size: {batch_size} is not within 1-{MAX_BATCH_EVENTS}")
        self.url = url.rstrip("/")
        self._api_key = api_key
        self._transport = transport
        self._timeout = timeout
        self._batch_size = batch_size
        self._interval = flush_interval
        self._max_queue = max_queue
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._retry_after_max = retry_after_max
        self._shutdown_timeout = shutdown_timeout
        merged = dict(defaults or {})
        if service is not None:
            merged["service"] = service
        if environment is not None:
            merged["environment"] = environment
        self._encoder = Encoder(merged)
        self._sync = sync
        self._closed = False
        self._shutdown_deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._reset()
        if sync:
            self.track = self._track_sync  # type: ignore[method-assign]
        else:
            self._start()
        atexit.register(self.close)
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (m := ref()) and m())

    # --- the caller's side ------------------------------------------------------------------

    def track(self, type: str, **attributes: Any) -> None:
        """Queue one event and return at once. ``attributes`` are the well-known names
        (``endpoint``, ``input_tokens``, ``cost``...); other names go into ``properties``."""
        queue = self._queue
        if len(queue) >= self._max_queue:
            self._drop()
            return
        queue.append((type, _now(), attributes, current_scope()))
        if len(queue) == self._batch_size:
            self._wake.set()

    def _track_sync(self, type: str, **attributes: Any) -> None:
        self._queue.append((type, _now(), attributes, current_scope()))
        self.flush()

    @contextmanager
    def span(self, type: str, **attributes: Any) -> Iterator[Scope]:
        """Time the block as one event of ``type``; events tracked inside (LLM and HTTP calls,
        tool calls) are its children in the trace. A block that raises is recorded with
        ``error.type`` in its properties, and the exception propagates."""
        parent = current_scope()
        trace, span, parent_span = parent.child()
        token = enter_scope(Scope(parent.attributes, trace, span, parent_span))
        started = time.perf_counter()
        error: str | None = None
        try:
            yield current_scope()
        except BaseException as exc:
            error = type_name(exc)
            raise
        finally:
            exit_scope(token)
            extra: dict[str, Any] = {}
            if error is not None:
                extra["error.type"] = error
            self.track(
                type,
                trace_id=trace,
                span_id=span,
                parent_span_id=parent_span,
                latency_ms=(time.perf_counter() - started) * 1000,
                **extra,
                **attributes,
            )

    def _drop(self) -> None:
        with self._stats_lock:
            self._dropped += 1
            first = self._dropped == 1
        if first:
            log.warning("percall: queue full (%d events); dropping new events", self._max_queue)

    # --- delivery ---------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued so far, in this thread, and return when it is done (or given
        up after the retries, or after ``timeout`` seconds of retrying)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._drain(deadline)

    def close(self) -> None:
        """Flush (at most ``shutdown_timeout`` seconds) and stop. Also runs at interpreter
        exit."""
        if self._closed:
            return
        self._shutdown_deadline = time.monotonic() + self._shutdown_timeout
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._shutdown_timeout)
        self._drain(self._shutdown_deadline)
        self._http.close()
        atexit.unregister(self.close)

    def stats(self) -> dict[str, Any]:
        """Counts since start: events ``sent`` (stored or already stored), ``failed`` (given up
        after retries or refused as a whole, e.g. 401), ``rejected`` and ``conflicts`` (refused
        one by one by the server; ``rejected_codes`` by code), ``dropped`` (queue full),
        ``queued`` (waiting or in flight), ``retries`` (requests resent)."""
        with self._stats_lock:
            return {
                "sent": self._sent,
                "failed": self._failed,
                "dropped": self._dropped,
                "queued": len(self._queue) + self._in_flight,
                "rejected": self._rejected,
                "conflicts": self._conflicts,
                "duplicates": self._duplicates,
                "retries": self._retries,
                "batches": self._batches,
                "rejected_codes": dict(self._codes),
            }

    def _reset(self) -> None:
        self._queue: deque[tuple[str, float, dict[str, Any], Scope]] = deque()
        self._wake = threading.Event()
        self._send_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._sent = self._failed = self._dropped = self._rejected = 0
        self._conflicts = self._duplicates = self._retries = self._batches = 0
        self._in_flight = 0
        self._codes: Counter[str] = Counter()
        self._http = httpx.Client(
            base_url=self.url,
            transport=self._transport,
            timeout=self._timeout,
            headers={
                "Authorization": f"Bearer {self._api_key}",
                "Content-Type": "application/json",
                "User-Agent": "percall-sdk/0.1",
            },
        )

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="percall-flush", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        # The parent still holds and sends what was queued before the fork; the child starts
        # empty, with its own connection pool and flush thread.
        self._reset()
        if not self._sync and not self._closed:
            self._start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._closed:
                return
            self._drain(None)

    def _drain(self, deadline: float | None) -> None:
        queue = self._queue
        wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._send_lock.acquire(timeout=wait):
            return  # a batch in flight is still being retried; it keeps the rest queued
        try:
            while queue:
                items = []
                try:
                    for _ in range(self._batch_size):
                        items.append(queue.popleft())
                except IndexError:
                    pass
                self._in_flight = len(items)
                try:
                    self._send_items(items, deadline)
                except Exception:  # never let a bug here kill the flush thread
                    log.exception("percall: could not send %d events", len(items))
                    with self._stats_lock:
                        self._failed += len(items)
                finally:
                    self._in_flight = 0
        finally:
            self._send_lock.release()

    def _send_items(
        self, items: list[tuple[str, float, dict[str, Any], Scope]], deadline: float | None
    ) -> None:
        encoder = self._encoder
        encoded: list[bytes] = []
        size = 0
        for event_type, at, attributes, scope in items:
            data = encoder.encode(encoder.event(event_type, at, attributes, scope))
            if size + len(data) + 1 > _BODY_BUDGET and encoded:
                self._post(encoded, deadline)
                encoded, size = [], 0
            encoded.append(data)
            size += len(data) + 1
        if encoded:
            self._post(encoded, deadline)

    def _post(self, encoded: list[bytes], deadline: float | None) -> None:
        body = batch_body(encoded)
        count = len(encoded)
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = self._http.post("/api/v1/events", content=body)
            except httpx.TransportError as exc:
                reason = f"{type_name(exc)}: {exc}"
            else:
                status = response.status_code
                if status in (200, 207):
                    self._outcome(response, count)
                    return
                if status == 413 and count > 1:
                    half = count // 2
                    self._post(encoded[:half], deadline)
                    self._post(encoded[half:], deadline)
                    return
                reason = f"HTTP {status}"
                if status != 429 and status < 500:
                    log.error(
                        "percall: %d events refused: HTTP %d %s", count, status, response.text[:500]
                    )
                    self._count_failed(count)
                    return
                retry_after = _retry_after(response.headers.get("retry-after"))
            if retry_after is not None:
                delay = min(retry_after, self._retry_after_max) + random.uniform(0, 0.1)
            else:
                cap = min(self._backoff_max, self._backoff_base * 2 ** (attempt - 1))
                delay = random.uniform(0, cap)  # full jitter: clients do not retry in step
            # After close() even the flush thread's retries stop at the shutdown deadline.
            limit = self._shutdown_deadline if deadline is None else deadline
            out_of_time = limit is not None and time.monotonic() + delay > limit
            if attempt > self._max_retries or out_of_time:
                log.error(
                    "percall: %d events not sent after %d attempts (%s)", count, attempt, reason
                )
                self._count_failed(count)
                return
            with self._stats_lock:
                self._retries += 1
            log.info("percall: %s; retrying %d events in %.2fs", reason, count, delay)
            time.sleep(delay)

    def _count_failed(self, count: int) -> None:
        with self._stats_lock:
            self._failed += count
            self._batches += 1

    def _outcome(self, response: httpx.Response, count: int) -> None:
        try:
            answer = response.json()
            results = answer.get("results") or []
            accepted = int(answer.get("accepted", 0))
        except (ValueError, AttributeError, TypeError):
            log.warning("percall: unreadable answer to a batch of %d events", count)
            results, accepted = [], count
        duplicates = rejected = conflicts = 0
        codes: Counter[str] = Counter()
        for outcome in results:
            status = outcome.get("status")
            if status == "duplicate":
                duplicates += 1
                continue
            if status == "conflict":
                conflicts += 1
            else:
                rejected += 1
            codes[str(outcome.get("code"))] += 1
            log.warning(
                "percall: event %s %s (%s): %s",
                outcome.get("id"),
                status,
                outcome.get("code"),
                outcome.get("message"),
            )
        with self._stats_lock:
            self._sent += accepted + duplicates
            self._duplicates += duplicates
            self._rejected += rejected
            self._conflicts += conflicts
            self._codes.update(codes)
            self._batches += 1


def type_name(exc: BaseException) -> str:
    return type(exc).__qualname__
