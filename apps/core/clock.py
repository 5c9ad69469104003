"""Reading ``--as-of`` style times from people: ISO 8601 with an offset, nothing naive."""

from datetime import UTC, datetime


def aware_time_parse(raw: str, *, field: str) -> datetime:
    """An aware datetime from ISO 8601 text ('2026-12-01T00:00:00Z'); ValueError names
    ``field`` and the text when it is not a time or has no offset."""
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{field}: {raw!r} is not an ISO 8601 time") from exc
    if value.tzinfo is None:
        raise ValueError(f"{field}: {raw!r} needs an offset such as Z or +02:00")
    return value


def utc_time_parse(raw: str, *, field: str) -> datetime:
    """A time from a query string, in UTC: ISO 8601 with an offset ('+' may arrive decoded as
    a space). ValueError names ``field`` and the text when it is not a time, has no offset, or
    falls outside years 1-9999 once in UTC."""
    try:
        value = datetime.fromisoformat(raw.replace(" ", "+").replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{field}: {raw!r} is not an ISO 8601 time") from exc
    if value.tzinfo is None:
        raise ValueError(f"{field}: {raw!r} needs an offset such as Z or +02:00")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # 9999-12-31T23:00-05:00 is past the last representable day
        raise ValueError(f"{field}: {raw!r} is out of range in UTC") from exc
