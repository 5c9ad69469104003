"""Queued events to the JSON Percall ingests (``POST /api/v1/events``), on the flush thread.

What the server requires and this module guarantees: ``id`` 1-128 characters (a UUIDv7),
``timestamp`` RFC 3339 in UTC with milliseconds (``2026-11-20T10:00:00.123Z``), numbers as JSON
numbers or decimal strings, never NaN or infinities, at most 12 decimal places and 15
significant digits (what every store keeps exactly), text attributes cut to the column's length,
and unknown top-level names moved into ``properties`` (the server rejects unknown names).
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from percall._context import Scope
from percall._ids import span_id as new_span_id
from percall._ids import uuid7

log = logging.getLogger("percall")

# Longest value the server keeps for each text attribute.
TEXT_LIMITS = {
    "endpoint": 200,
    "feature": 200,
    "workflow": 200,
    "team": 200,
    "service": 200,
    "user": 200,
    "environment": 64,
    "provider": 64,
    "model": 128,
    "tenant": 64,
}
WHOLE = frozenset(
    (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "status_code",
        "attempt",
        "bytes_in",
        "bytes_out",
    )
)
DECIMAL = frozenset(("credits", "quantity", "cost", "latency_ms"))
FLAGS = frozenset(("cache_hit", "external"))
TOP_LEVEL = (
    frozenset(TEXT_LIMITS)
    | WHOLE
    | DECIMAL
    | FLAGS
    | {"id", "type", "timestamp", "properties", "trace_id", "span_id", "parent_span_id"}
    | {"cost_currency"}
)
_PLACES = Decimal("1e-12")
_MS = Decimal("0.001")
_AS_IS = frozenset(
    (
        "id",
        "type",
        "timestamp",
        "properties",
        "trace_id",
        "span_id",
        "parent_span_id",
        "cost_currency",
    )
)


def decimal_text(value: Any, places: Decimal = _PLACES) -> str | None:
    """A non-negative finite number as a plain decimal string the server keeps exactly, or None
    when it is not one (the attribute is then left out, never sent as NaN)."""
    try:
        if isinstance(value, float):
            if not math.isfinite(value):
                return None
            number = Decimal(f"{value:.15g}")
        elif isinstance(value, bool):
            return None
        else:
            number = Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        return None
    if not number.is_finite():
        return None
    if number.as_tuple().exponent < places.as_tuple().exponent:  # type: ignore[operator]
        number = number.quantize(places, rounding=ROUND_HALF_UP)
    return format(number.normalize(), "f")


def _whole(value: Any) -> int | None:
    if value.__class__ is int:
        return int(value)
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) and number == int(number) else None


def _decimal(places: Decimal, digits: int) -> Any:
    def convert(value: Any) -> Any:
        if value.__class__ is int:
            return value
        if value.__class__ is float:
            # A float goes out as a JSON number of at most 15 significant digits and
            # ``digits`` places: what the server keeps exactly, without Decimal's cost.
            if not math.isfinite(value):
                return None
            return float(f"{round(value, digits):.15g}")
        return decimal_text(value, places)

    return convert


def _text(limit: int) -> Any:
    def convert(value: Any) -> str:
        text = value if value.__class__ is str else str(value)
        return text if len(text) <= limit else text[:limit]

    return convert


_CONVERT: dict[str, Any] = {
    **dict.fromkeys(WHOLE, _whole),
    **{name: _decimal(_PLACES, 12) for name in DECIMAL},
    "latency_ms": _decimal(_MS, 3),
    **{name: _text(limit) for name, limit in TEXT_LIMITS.items()},
    **dict.fromkeys(FLAGS, bool),
}


class _Clock:
    """RFC 3339 text for Unix times, the second's prefix cached (a batch is mostly one second)."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def text(self, unix_seconds: float) -> str:
        second = int(unix_seconds)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        ms = int((unix_seconds - second) * 1000)
        return f"{self._prefix}.{ms:03d}Z"


def timestamp_text(value: Any) -> str | None:
    """A user-given timestamp (datetime, Unix seconds or RFC 3339 text) in the server's form."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = datetime.fromtimestamp(value, tz=timezone.utc)
    elif isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        return None  # a naive time is ambiguous: the event takes the tracked time instead
    value = value.astimezone(timezone.utc)
    return f"{value.isoformat(timespec='milliseconds')[:23]}Z"


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_text(value) if value.is_finite() else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


_dumps = json.JSONEncoder(separators=(",", ":"), default=_json_default, allow_nan=False).encode


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class Encoder:
    """Builds and encodes events; one per flushing thread (it caches the current second)."""

    def __init__(self, defaults: dict[str, Any]) -> None:
        self._defaults = defaults
        self._clock = _Clock()

    def event(
        self, event_type: str, unix_seconds: float, attributes: dict[str, Any], scope: Scope
    ) -> dict[str, Any]:
        """The event to send: client defaults, then the context's attributes, then the call's
        own (later wins), with an id, a timestamp and the trace ids of a child span."""
        event: dict[str, Any] = {"id": None, "type": event_type, "timestamp": None}
        event.update(self._defaults)
        event.update(scope.attributes)
        event.update(attributes)
        if event["id"] is None:
            event["id"] = uuid7(unix_seconds)
        stamp = event["timestamp"]
        event["timestamp"] = (
            self._clock.text(unix_seconds) if stamp is None else timestamp_text(stamp)
        ) or self._clock.text(unix_seconds)
        if "trace_id" not in attributes and scope.trace_id is not None:
            event["trace_id"] = scope.trace_id
            event["span_id"] = new_span_id()
            event["parent_span_id"] = scope.span_id
        return self._clean(event)

    def _clean(self, event: dict[str, Any]) -> dict[str, Any]:
        props = event.get("properties")
        extra = None
        for name, value in list(event.items()):
            if value is None:
                del event[name]
                continue
            convert = _CONVERT.get(name)
            if convert is None:
                if name in _AS_IS:
                    continue
                if extra is None:
                    extra = dict(props) if isinstance(props, dict) else {}
                extra[name] = value
                del event[name]
                continue
            converted = convert(value)
            if converted is None:
                log.debug("percall: %s=%r is not a valid value; left out", name, value)
                del event[name]
            elif converted is not value:
                event[name] = converted
        if extra is not None:
            event["properties"] = extra
        elif props is not None and not isinstance(props, dict):
            del event["properties"]
        return event

    def encode(self, event: dict[str, Any]) -> bytes:
        try:
            return _dumps(event).encode()
        except ValueError:  # a NaN or infinity somewhere in properties
            return _dumps(_finite(event)).encode()


def batch_body(encoded: list[bytes]) -> bytes:
    return b'{"events":[' + b",".join(encoded) + b"]}"
