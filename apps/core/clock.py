"""Reading ``--as-of`` style times from people: ISO 8601 with an offset, nothing naive."""

from datetime import datetime


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
