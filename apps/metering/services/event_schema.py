"""The shape of an incoming event, decoded and checked without an object per field.

msgspec decodes each event straight from its JSON bytes into ``EventIn`` (C speed, numbers as
``Decimal`` from their literal text, never float); ``event_normalize`` then applies the checks a
type cannot express and returns the row to store, or raises ``EventInvalid`` naming the field.

Two shapes: ``StrictEventIn``, for the fast path, takes whole numbers only as JSON integers, so
msgspec checks them all and ``event_normalize`` looks only at the decimals; ``EventIn`` also takes
them as decimal strings ("812"), which ``event_normalize`` then checks one by one.
"""

import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Annotated, Any

import msgspec
from django.conf import settings

from apps.core.money import currency_is_known
from apps.metering.services.privacy import PrivacyPolicy

Str64 = Annotated[str, msgspec.Meta(max_length=64)]
Str128 = Annotated[str, msgspec.Meta(max_length=128)]
Str200 = Annotated[str, msgspec.Meta(max_length=200)]

# Whole numbers: JSON integers are checked by msgspec itself; decimal strings ("812") are checked
# by ``event_normalize``. A JSON fraction (5.5) is refused for these fields.
WholeCount = Annotated[int, msgspec.Meta(ge=0, le=10**18 - 1)]
WholeStatus = Annotated[int, msgspec.Meta(ge=100, le=599)]
WholeAttempt = Annotated[int, msgspec.Meta(ge=1, le=10**18 - 1)]
Count = WholeCount | str
StatusCode = WholeStatus | str
Attempt = WholeAttempt | str

# PostgreSQL keeps 30-digit decimals exactly; the embedded SQLite stores them as 64-bit floats,
# which keep 15 significant digits. A value SQLite would round is refused there, with this limit
# in the message, rather than stored changed.
MAX_SIGNIFICANT_DIGITS = 18 if settings.USING_POSTGRES else 15
MAX_DECIMAL_PLACES = 12  # the event columns keep 12 places: sub-micro costs stay exact
MAX_INTEGER = 2**63 - 1
MAX_PROPERTIES_BYTES = 16 * 1024
MAX_LATENCY_MS = 10**12  # latency_ms is numeric(15, 3): 12 integer digits
_MS = Decimal("0.001")
_ZERO = Decimal(0)
_PLACES = Decimal(1).scaleb(-MAX_DECIMAL_PLACES)
_SIGNIFICANT = Context(prec=MAX_SIGNIFICANT_DIGITS)
_WIDE = Context(prec=MAX_SIGNIFICANT_DIGITS + MAX_DECIMAL_PLACES + 2)  # quantize never overflows
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")


class EventInvalid(Exception):
    """One event failed a check; ``code`` is the per-event outcome code."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.event_id: str | None = None  # the event's id, when it could still be read


# gc=False: an event references only strings, numbers and plain JSON values, never itself, so
# the cycle collector need not track it. Tracked, a batch's thousands of events set off
# collections that cost more than decoding them (measured: 10 vs 5 us an event).
class EventIn(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    tenant: Str64 | None = None
    timestamp: Str64 | None = None  # RFC 3339 with an offset, checked by ``sent_time_text``
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
    input_tokens: Count | None = None
    output_tokens: Count | None = None
    cache_read_tokens: Count | None = None
    cache_write_tokens: Count | None = None
    reasoning_tokens: Count | None = None
    credits: Decimal | None = None
    quantity: Decimal | None = None
    cost: Decimal | None = None
    cost_currency: str | None = None
    latency_ms: Decimal | None = None
    status_code: StatusCode | None = None
    attempt: Attempt | None = None
    cache_hit: bool | None = None
    bytes_in: Count | None = None
    bytes_out: Count | None = None
    external: bool | None = None
    user: Str200 | None = None


class StrictEventIn(EventIn, forbid_unknown_fields=True, gc=False):
    """``EventIn`` with whole numbers as JSON integers only: msgspec checks every one of them."""

    input_tokens: WholeCount | None = None
    output_tokens: WholeCount | None = None
    cache_read_tokens: WholeCount | None = None
    cache_write_tokens: WholeCount | None = None
    reasoning_tokens: WholeCount | None = None
    status_code: WholeStatus | None = None
    attempt: WholeAttempt | None = None
    bytes_in: WholeCount | None = None
    bytes_out: WholeCount | None = None


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


def _number(label: str, value: Any) -> Decimal:
    """A finite, non-negative Decimal of at most 18 significant digits, 18 integer digits and
    12 decimal places (trailing zeros do not count), in canonical form (``normalize()``), or
    EventInvalid naming ``label``."""
    if type(value) is not Decimal:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise EventInvalid(f"{label}: expected a number or a decimal string, got {value!r}")
        try:
            value = Decimal(value)
        except ArithmeticError as exc:
            raise EventInvalid(f"{label}: {value!r} is not a decimal number") from exc
    if not value.is_finite():
        raise EventInvalid(f"{label}: {value} is not a finite number")
    if value.is_signed() and value:
        raise EventInvalid(f"{label}: {value} is negative")
    # normalize() drops trailing zeros; it also rounds to the context's 28 digits, which a value
    # with more digits than that fails to survive unchanged. The other limits are checked with
    # C-level Decimal calls (rounding in a context of the limit's precision changes nothing when
    # the value is within it): as_tuple() builds a named tuple, which costs more than all these.
    canonical = value.normalize()
    if (
        canonical != value
        or canonical.adjusted() >= MAX_SIGNIFICANT_DIGITS  # integer digits
        or _SIGNIFICANT.plus(canonical) != canonical
    ):
        raise EventInvalid(
            f"{label}: {value} has more than {MAX_SIGNIFICANT_DIGITS} significant digits"
        )
    if _WIDE.quantize(canonical, _PLACES) != canonical:
        raise EventInvalid(f"{label}: {value} has more than {MAX_DECIMAL_PLACES} decimal places")
    # The canonical form: equal values look the same (1.50 and 1.5), which the payload hash
    # relies on, and the stored value is the same since the columns have a fixed scale.
    return canonical if canonical else _ZERO


def _integer(label: str, value: Any, low: int = 0, high: int = MAX_INTEGER) -> int:
    """A whole number in [low, high] from a decimal string (JSON integers are checked by
    msgspec while decoding) or a number found in ``properties``."""
    if type(value) is int and not isinstance(value, bool):
        integer = value
    else:
        number = _number(label, value)
        integer = int(number)
        if integer != number:
            raise EventInvalid(f"{label}: {value} is not a whole number")
    if not low <= integer <= high:
        if high == 599:
            raise EventInvalid(f"{label}: {value} is not an HTTP status code (100-599)")
        if low == 1:
            raise EventInvalid(f"{label}: {value} must be at least 1 (1 is the first try)")
        raise EventInvalid(f"{label}: {value} is too large")
    return integer


def _milliseconds(label: str, value: Any) -> Decimal:
    """Latency in ms, kept to the microsecond (rounded half up beyond that), below
    MAX_LATENCY_MS (the column keeps 12 integer digits)."""
    number = _number(label, value)
    if number >= MAX_LATENCY_MS:
        raise EventInvalid(f"{label}: {value} ms is too large (at most {MAX_LATENCY_MS - 1})")
    return number.quantize(_MS, rounding=ROUND_HALF_UP)


def _status(label: str, value: Any) -> int:
    return _integer(label, value, 100, 599)


def _attempt(label: str, value: Any) -> int:
    return _integer(label, value, 1)


def _count(label: str, value: Any) -> int:
    return _integer(label, value, 0, 10**18 - 1)


# The check (and conversion) of each numeric attribute, by column.
_NUMERIC_CHECKS: dict[str, Any] = {
    **dict.fromkeys(
        (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "bytes_in",
            "bytes_out",
        ),
        _count,
    ),
    "status_code": _status,
    "attempt": _attempt,
    **dict.fromkeys(("credits", "quantity", "cost"), _number),
    "latency_ms": _milliseconds,
}
_POSITION = {column: index for index, column in enumerate(ATTRIBUTE_COLUMNS)}
_NUMERIC_AT = tuple((_POSITION[c], c, check) for c, check in _NUMERIC_CHECKS.items())
_DECIMAL_AT = tuple(
    (_POSITION[c], c, check)
    for c, check in _NUMERIC_CHECKS.items()
    if check in (_number, _milliseconds)
)
# W3C trace context ids: lower-case hex of a fixed length, not all zero. Checked with string
# methods: a msgspec pattern (a regular expression per id) measured slower.
_HEX = "0123456789abcdef"
_W3C_AT = tuple(
    (_POSITION[c], c, n) for c, n in (("trace_id", 32), ("span_id", 16), ("parent_span_id", 16))
)
# Text columns OpenTelemetry names can fill, with the longest value each keeps.
_TEXT_LENGTHS = {"endpoint": 200, "model": 128, "provider": 64}
_OTEL_NAMES = frozenset(name for name, _ in OTEL_ATTRIBUTES) | {_OTEL_RESEND_COUNT}
_FIRST_ATTRIBUTE = len(EventIn.__struct_fields__) - len(ATTRIBUTE_COLUMNS)
assert EventIn.__struct_fields__[_FIRST_ATTRIBUTE:] == ATTRIBUTE_COLUMNS


def _otel_fill(props: dict[str, Any], values: list[Any]) -> None:
    """Fill unset columns from OpenTelemetry attribute names found in ``properties``."""
    for otel_name, column in OTEL_ATTRIBUTES:
        position = _POSITION[column]
        if values[position] is None and otel_name in props:
            value = props[otel_name]
            label = f"properties.{otel_name}"
            if column in _NUMERIC_CHECKS:
                values[position] = _NUMERIC_CHECKS[column](label, value)
            elif isinstance(value, str) and value:
                values[position] = value[: _TEXT_LENGTHS[column]]
            else:
                raise EventInvalid(f"{label}: expected a string, got {value!r}")
    attempt = _POSITION["attempt"]
    if values[attempt] is None and _OTEL_RESEND_COUNT in props:
        label = f"properties.{_OTEL_RESEND_COUNT}"
        values[attempt] = _count(label, props[_OTEL_RESEND_COUNT]) + 1


_valid_types: set[str] = set()  # event types seen valid: most batches repeat a handful


def _event_type_check(event_type: str) -> None:
    if not _EVENT_TYPE.match(event_type):
        raise EventInvalid(
            f"type: {event_type!r} must start with a letter or digit and use only letters, "
            "digits and . _ : / -"
        )
    if len(_valid_types) < 10_000:
        _valid_types.add(event_type)


def event_normalize(
    event: EventIn, *, default_cost_currency: str, privacy: PrivacyPolicy | None = None
) -> tuple[list[Any], bytes]:
    """The checked column values of one event, in ``ATTRIBUTE_COLUMNS`` order, and its
    properties as canonical JSON bytes (keys sorted). Raises EventInvalid naming the field.

    With ``privacy``, ``user`` and denied properties come back pseudonymized or dropped: what
    the payload hash and the store see, so a resent event still hashes alike."""
    if event.type not in _valid_types:
        _event_type_check(event.type)
    values = list(msgspec.structs.astuple(event)[_FIRST_ATTRIBUTE:])
    # JSON integers were range-checked while decoding; decimals and strings are checked here.
    # A StrictEventIn has no strings where whole numbers go.
    for position, column, check in _DECIMAL_AT if type(event) is StrictEventIn else _NUMERIC_AT:
        value = values[position]
        if value.__class__ is not int and value is not None:
            values[position] = check(column, value)
    for position, column, length in _W3C_AT:
        value = values[position]
        if value is not None and (
            len(value) != length or value.strip(_HEX) or not value.strip("0")
        ):
            raise EventInvalid(
                f"{column}: {value!r} is not a W3C id ({length} lower-case hex digits, "
                "not all zero)"
            )
    props = event.properties
    if props and not _OTEL_NAMES.isdisjoint(props):
        _otel_fill(props, values)
    currency = values[_CURRENCY]
    if currency is not None and not currency_is_known(currency):
        raise EventInvalid(f"cost_currency: {currency!r} is not an ISO 4217 code")
    if currency is None and values[_COST] is not None:
        values[_CURRENCY] = default_cost_currency
    if privacy is not None:
        user = values[_USER]
        if user is not None and privacy.user_action != "keep":
            values[_USER] = (
                privacy.cache.get(user) or privacy.pseudonym(user)
                if privacy.user_action == "hash"
                else None
            )
        if props:
            props = privacy.properties_apply(props)
    properties = properties_encoder.encode(props)
    if len(properties) > MAX_PROPERTIES_BYTES:
        raise EventInvalid(
            f"properties: {len(properties)} bytes encoded, more than the {MAX_PROPERTIES_BYTES} "
            "allowed"
        )
    return values, properties


def event_nul_field(event: EventIn) -> str | None:
    """The first field of ``event`` holding a NUL character (its properties included), which
    PostgreSQL stores in no text or jsonb value; None when there is none."""
    for name in event.__struct_fields__:
        value = getattr(event, name)
        if value.__class__ is str and "\x00" in value:
            return name
    if event.properties and b"\\u0000" in properties_encoder.encode(event.properties):
        return "properties"
    return None


_CURRENCY = _POSITION["cost_currency"]
_COST = _POSITION["cost"]
_USER = _POSITION["user"]


def timestamp_to_ms(value: datetime) -> datetime:
    """The instant in UTC, truncated to the millisecond (the precision Percall keeps)."""
    if value.tzinfo is not UTC:  # msgspec decodes "Z" to UTC itself: skip the conversion
        value = value.astimezone(UTC)
    extra = value.microsecond % 1000
    return value.replace(microsecond=value.microsecond - extra) if extra else value


def utc_text(value: datetime) -> str:
    """The instant as fixed-width UTC text to the millisecond, 'YYYY-MM-DDTHH:MM:SS.mmmZ': what
    the store writes, and what ingestion compares, since such texts sort as instants."""
    if value.tzinfo is not UTC or value.microsecond % 1000:
        value = timestamp_to_ms(value)
    return f"{value.isoformat(timespec='milliseconds')[:23]}Z"


def sent_time_text(value: str) -> str:
    """A sent timestamp (RFC 3339 with an offset) as ``utc_text``, or EventInvalid.

    Most senders already write that form ('...T10:00:00.123Z', or '+00:00' for 'Z'): it is
    then checked by parsing and kept as it came, since formatting a time costs more than all the
    rest of an event's checks."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise EventInvalid(
            f"timestamp: {value!r} is not an RFC 3339 time (e.g. '2026-11-20T10:00:00.123Z')"
        ) from None
    if value[10:11] == "T" and value[19:20] == "." and parsed.tzinfo is UTC:
        if len(value) == 24 and value[23] == "Z":
            return value
        if len(value) == 29 and value.endswith("+00:00"):
            return f"{value[:23]}Z"
    if parsed.tzinfo is None:
        raise EventInvalid(f"timestamp: {value!r} has no offset; add 'Z' or '+02:00'")
    return utc_text(parsed)
