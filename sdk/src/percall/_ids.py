"""Event ids (UUIDv7, RFC 9562) and W3C trace-context ids, generated on the client.

Ids are made when a batch is built, not in ``track()``: the caller pays nothing for them, and a
batch is encoded once and resent byte for byte, so a retry carries the same ids and the server
deduplicates it (it stores an event at most once per tenant and id).
"""

from __future__ import annotations

import random
import time

# Ids need to be unique, not secret: the Mersenne Twister is ten times cheaper than
# os.urandom, and Python reseeds it in a forked child, so processes do not repeat each other.
_bits = random.getrandbits

_VERSION_VARIANT = (0x7 << 76) | (0b10 << 62)


def uuid7(unix_seconds: float | None = None) -> str:
    """A UUIDv7 string: 48 bits of Unix milliseconds (so ids sort by time), then 74 random bits.

    ``unix_seconds`` is the event's own time, so an id made at flush still orders by when the
    event happened."""
    ms = int((time.time() if unix_seconds is None else unix_seconds) * 1000) & ((1 << 48) - 1)
    value = (ms << 80) | _VERSION_VARIANT | _bits(12) << 64 | _bits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def trace_id() -> str:
    """32 lower-case hex digits, never all zero (W3C Trace Context)."""
    while True:
        value = _bits(128)
        if value:
            return f"{value:032x}"


def span_id() -> str:
    """16 lower-case hex digits, never all zero (W3C Trace Context)."""
    while True:
        value = _bits(64)
        if value:
            return f"{value:016x}"


_HEX = frozenset("0123456789abcdef")


def _is_id(value: str, length: int) -> bool:
    return len(value) == length and _HEX.issuperset(value) and bool(value.strip("0"))


def traceparent_parse(header: str | None) -> tuple[str, str] | None:
    """(trace_id, parent span id) from a ``traceparent`` header, or None when it is absent or
    invalid (a bad header starts a new trace rather than failing the request)."""
    if not header:
        return None
    parts = header.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    version, trace, parent, flags = parts[0], parts[1], parts[2], parts[3]
    if version == "00" and len(parts) != 4:
        return None
    if len(flags) != 2 or not _HEX.issuperset(flags):
        return None
    if not (_is_id(trace, 32) and _is_id(parent, 16)):
        return None
    return trace, parent


def traceparent_format(trace: str, span: str, sampled: bool = True) -> str:
    return f"00-{trace}-{span}-{'01' if sampled else '00'}"
