"""CloudEvents 1.0 in HTTP structured, batch and binary modes, mapped onto Percall events.

``subject`` is the tenant, ``time`` the timestamp, ``type`` the event type and ``data`` the
attributes: well-known names become columns, every other key lands in ``properties``. The
``traceparent`` extension fills ``trace_id`` and ``span_id`` when ``data`` does not.
"""

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec

from apps.metering.services.event_schema import EventIn, EventInvalid, utc_text

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_EVENT_FIELDS = frozenset(EventIn.__struct_fields__) - {"id", "type", "tenant", "timestamp"}


class CloudEventIn(msgspec.Struct):
    """Required and optional context attributes; extension attributes are allowed and ignored
    unless named here."""

    specversion: str
    id: Annotated[str, msgspec.Meta(min_length=1)]
    source: Annotated[str, msgspec.Meta(min_length=1)]
    type: Annotated[str, msgspec.Meta(min_length=1)]
    subject: str | None = None
    time: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: dict[str, Any] | None = None
    data_base64: str | None = None
    traceparent: str | None = None


cloud_event_decoder = msgspec.json.Decoder(CloudEventIn, float_hook=Decimal)
cloud_event_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_data_decoder = msgspec.json.Decoder(dict[str, Any], float_hook=Decimal)


def cloud_event_to_event(cloud: CloudEventIn) -> EventIn:
    """Map one CloudEvent onto an ``EventIn``, or raise EventInvalid naming the attribute."""
    if cloud.specversion != "1.0":
        raise EventInvalid(f"specversion: {cloud.specversion!r} is not supported (expected '1.0')")
    if cloud.data_base64 is not None:
        raise EventInvalid("data_base64: binary data is not supported; send a JSON object in data")
    if cloud.datacontenttype not in (None, "application/json") and cloud.data is not None:
        raise EventInvalid(
            f"datacontenttype: {cloud.datacontenttype!r} is not supported (application/json)"
        )
    data = dict(cloud.data or {})
    properties = data.pop("properties", {})
    if not isinstance(properties, dict):
        raise EventInvalid("data.properties: expected an object")
    fields: dict[str, Any] = {
        "id": cloud.id,
        "type": cloud.type,
        "tenant": cloud.subject,
        "timestamp": None if cloud.time is None else utc_text(cloud.time),
    }
    for key, value in data.items():
        if key in _EVENT_FIELDS:
            fields[key] = value
        else:
            properties[key] = value
    properties.setdefault("cloudevents.source", cloud.source)
    fields["properties"] = properties
    if cloud.traceparent is not None:
        match = _TRACEPARENT.match(cloud.traceparent)
        if match is None:
            raise EventInvalid(f"traceparent: {cloud.traceparent!r} is not a W3C traceparent")
        fields.setdefault("trace_id", match.group(1))
        fields.setdefault("span_id", match.group(2))
    try:
        return msgspec.convert(fields, EventIn)
    except msgspec.ValidationError as exc:
        raise EventInvalid(validation_message(exc)) from exc


def cloud_event_from_headers(headers: dict[str, str], body: bytes) -> CloudEventIn:
    """Binary mode: context attributes in ``ce-*`` headers, the data in the body."""
    attributes: dict[str, Any] = {
        name[3:]: value for name, value in headers.items() if name.startswith("ce-")
    }
    if body.strip():
        attributes["data"] = _data_decoder.decode(body)
    try:
        return msgspec.convert(attributes, CloudEventIn, strict=False)
    except msgspec.ValidationError as exc:
        raise EventInvalid(validation_message(exc)) from exc


def validation_message(exc: msgspec.ValidationError) -> str:
    """msgspec's 'Expected `int`, got `str` - at `$.input_tokens`' as 'input_tokens: ...'."""
    text = str(exc)
    message, _, path = text.rpartition(" - at `")
    if not message:
        return text
    field = path.rstrip("`").removeprefix("$").lstrip(".")
    return f"{field}: {message}" if field else message
