"""The shape of an incoming event, decoded and checked without an object per field.

msgspec decodes each event straight from its JSON bytes into ``EventIn`` (C speed, numbers as
``Decimal`` from their literal text, never float); ``event_normalize`` then applies the checks a
type cannot express and returns the row to store, or raises ``EventInvalid`` naming the field.
"""

import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

import msgspec

from apps.core.money import currency_is_known

Str64 = Annotated[str, msgspec.Meta(max_length=64)]
Str128 = Annotated[str, msgspec.Meta(max_length=128)]
Str200 = Annotated[str, msgspec.Meta(max_length=200)]
AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]

MAX_SIGNIFICANT_DIGITS = 18
MAX_DECIMAL_PLACES = 12  # the event columns keep 12 places: sub-micro costs stay exact
MAX_INTEGER = 2**63 - 1
MAX_PROPERTIES_BYTES = 16 * 1024
_MS = Decimal("0.001")
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_W3C_IDS = (("trace_id", _HEX32, 32), ("span_id", _HEX16, 16), ("parent_span_id", _HEX16, 16))


class EventInvalid(Exception):
    """One event failed a check; ``code`` is the per-event outcome code."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class EventIn(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    tenant: Str64 | None = None
    timestamp: AwareTime | None = None
    properties: dict[str, Any] = {}
    endpoint: Str200 | None = None
    feature: Str200 | None = None
    workflow: Str200 | None = None
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    team: Str200 | None = None
    service: Str200 | None = None
    environment: Str64 | None = None
    provider: Str64 | None = None
    model: Str128 | None = None
    input_tokens: Decimal | None = None
    output_tokens: Decimal | None = None
    cache_read_tokens: Decimal | None = None
    cache_write_tokens: Decimal | None = None
    reasoning_tokens: Decimal | None = None
    credits: Decimal | None = None
    quantity: Decimal | None = None
    cost: Decimal | None = None
    cost_currency: str | None = None
    latency_ms: Decimal | None = None
    status_code: Decimal | None = None
    attempt: Decimal | None = None
    cache_hit: bool | None = None
    bytes_in: Decimal | None = None
    bytes_out: Decimal | None = None
    external: bool | None = None
    user: Str200 | None = None


# Columns stored for every event after (tenant_id, timestamp, event_id, type, received_at).
ATTRIBUTE_COLUMNS = (
    "endpoint",
    "feature",
    "workflow",
    "trace_id",
    "span_id",
    "parent_span_id",
    "team",
    "service",
    "environment",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "credits",
    "quantity",
    "cost",
    "cost_currency",
    "latency_ms",
    "status_code",
    "attempt",
    "cache_hit",
    "bytes_in",
    "bytes_out",
    "external",
    "user",
)
_INTEGER_FIELDS = frozenset(
    (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "bytes_in",
        "bytes_out",
        "status_code",
        "attempt",
    )
)
_DECIMAL_FIELDS = frozenset(("credits", "quantity", "cost"))
_NUMERIC_FIELDS = _INTEGER_FIELDS | _DECIMAL_FIELDS | {"latency_ms"}

# OpenTelemetry attribute names in ``properties`` and the column each fills when the event does
# not set it itself. Earlier names win: the served model over the requested one, current names
# over their deprecated forms.
OTEL_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("gen_ai.usage.input_tokens", "input_tokens"),
    ("gen_ai.usage.prompt_tokens", "input_tokens"),
    ("gen_ai.usage.output_tokens", "output_tokens"),
    ("gen_ai.usage.completion_tokens", "output_tokens"),
    ("gen_ai.usage.cache_read.input_tokens", "cache_read_tokens"),
    ("gen_ai.usage.cache_creation.input_tokens", "cache_write_tokens"),
    ("gen_ai.usage.reasoning.output_tokens", "reasoning_tokens"),
    ("gen_ai.response.model", "model"),
    ("gen_ai.request.model", "model"),
    ("gen_ai.provider.name", "provider"),
    ("gen_ai.system", "provider"),
    ("http.route", "endpoint"),
    ("http.response.status_code", "status_code"),
)
_OTEL_RESEND_COUNT = "http.request.resend_count"

properties_encoder = msgspec.json.Encoder(decimal_format="number", order="sorted")


def _number(field: str, value: Any) -> Decimal:
    """A finite, non-negative Decimal of at most 18 significant digits, or EventInvalid."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise EventInvalid(f"{field}: expected a number or a decimal string, got {value!r}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(value)
    except ArithmeticError as exc:
        raise EventInvalid(f"{field}: {value!r} is not a decimal number") from exc
    if not number.is_finite():
        raise EventInvalid(f"{field}: {value} is not a finite number")
    if number < 0:
        raise EventInvalid(f"{field}: {value} is negative")
    # Trailing zeros are not significant ("1.500" has 2); the integer part is bounded too, so
    # 1E+30 (one significant digit) still cannot overflow a column.
    if (
        len(number.normalize().as_tuple().digits) > MAX_SIGNIFICANT_DIGITS
        or number.adjusted() >= MAX_SIGNIFICANT_DIGITS
    ):
        raise EventInvalid(f"{field}: {value} has more than 18 significant digits")
    return number


def _attribute_check(field: str, value: Any, label: str) -> Any:
    """Check one numeric attribute and turn it into what its column stores."""
    number = _number(label, value)
    if field in _INTEGER_FIELDS:
        if number != number.to_integral_value():
            raise EventInvalid(f"{label}: {value} is not a whole number")
        integer = int(number)
        if integer > MAX_INTEGER:
            raise EventInvalid(f"{label}: {value} is too large")
        if field == "status_code" and not 100 <= integer <= 599:
            raise EventInvalid(f"{label}: {value} is not an HTTP status code (100-599)")
        if field == "attempt" and integer < 1:
            raise EventInvalid(f"{label}: {value} must be at least 1 (1 is the first try)")
        return integer
    if field == "latency_ms":
        return number.quantize(_MS, rounding=ROUND_HALF_UP)
    exponent = number.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > MAX_DECIMAL_PLACES:
        raise EventInvalid(f"{label}: {value} has more than {MAX_DECIMAL_PLACES} decimal places")
    return number


def _otel_fill(event: EventIn, attributes: dict[str, Any]) -> None:
    """Fill unset columns from OpenTelemetry attribute names found in ``properties``."""
    props = event.properties
    for otel_name, column in OTEL_ATTRIBUTES:
        if attributes.get(column) is None and otel_name in props:
            value = props[otel_name]
            label = f"properties.{otel_name}"
            if column in _NUMERIC_FIELDS:
                attributes[column] = _attribute_check(column, value, label)
            elif isinstance(value, str) and value:
                attributes[column] = value[:200]
            else:
                raise EventInvalid(f"{label}: expected a string, got {value!r}")
    if attributes.get("attempt") is None and _OTEL_RESEND_COUNT in props:
        label = f"properties.{_OTEL_RESEND_COUNT}"
        resends = _attribute_check("bytes_in", props[_OTEL_RESEND_COUNT], label)  # a count
        attributes["attempt"] = resends + 1


def event_normalize(event: EventIn, *, default_cost_currency: str) -> tuple[dict[str, Any], bytes]:
    """The checked column values of one event and its properties as canonical JSON bytes."""
    if not _EVENT_TYPE.match(event.type):
        raise EventInvalid(
            f"type: {event.type!r} must start with a letter or digit and use only letters, "
            "digits and . _ : / -"
        )
    attributes: dict[str, Any] = {}
    for column in ATTRIBUTE_COLUMNS:
        value = getattr(event, column)
        if value is not None and column in _NUMERIC_FIELDS:
            value = _attribute_check(column, value, column)
        attributes[column] = value
    for column, pattern, digits in _W3C_IDS:
        value = attributes[column]
        if value is not None and (not pattern.match(value) or not value.strip("0")):
            raise EventInvalid(
                f"{column}: {value!r} is not a W3C id ({digits} lower-case hex digits, "
                "not all zero)"
            )
    if event.properties:
        _otel_fill(event, attributes)
    currency = attributes["cost_currency"]
    if currency is not None and not currency_is_known(currency):
        raise EventInvalid(f"cost_currency: {currency!r} is not an ISO 4217 code")
    if attributes["cost"] is not None and currency is None:
        attributes["cost_currency"] = default_cost_currency
    properties = properties_encoder.encode(event.properties)
    if len(properties) > MAX_PROPERTIES_BYTES:
        raise EventInvalid(
            f"properties: {len(properties)} bytes encoded, more than the {MAX_PROPERTIES_BYTES} "
            "allowed"
        )
    return attributes, properties


def timestamp_to_ms(value: datetime) -> datetime:
    """The instant in UTC, truncated to the millisecond (the precision Percall keeps)."""
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)
