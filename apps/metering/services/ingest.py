"""Ingestion: a batch of events in, one outcome per event out, each event stored at most once.

The fast path builds no serializer or ORM object per event: msgspec decodes each event from its
bytes, plain checks validate it, and ``event_store`` writes the batch with two COPYs (through a
staging table when some key is already stored). One bad event never sinks its batch; only a
body that is not a batch at all is refused whole.
"""

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.bulk import rows_insert
from apps.core.jobs import job_enqueue_on_commit
from apps.metering.errors import IngestBodyInvalid
from apps.metering.models import IngestBatch, IngestTally
from apps.metering.services.cloudevents import (
    cloud_event_batch_decoder,
    cloud_event_decoder,
    cloud_event_from_headers,
    cloud_event_to_event,
    validation_message,
)
from apps.metering.services.event_schema import (
    EventIn,
    EventInvalid,
    StrictEventIn,
    event_normalize,
    event_nul_field,
    sent_time_text,
    timestamp_to_ms,
    utc_text,
)
from apps.metering.services.event_store import StagedEvent, event_rows_append
from apps.metering.services.partitions import event_partitions_ensure
from apps.metering.services.privacy import PrivacyPolicy, privacy_policy
from apps.metering.services.rollup import rollup_pending_mark
from apps.tenants.selectors import tenant_ids_by_external_id
from apps.tenants.services.tenants import tenant_first_calls_record

ACCEPTED, DUPLICATE, CONFLICT, REJECTED = "accepted", "duplicate", "conflict", "rejected"
CONTENT_JSON = "application/json"
CONTENT_CE = "application/cloudevents+json"
CONTENT_CE_BATCH = "application/cloudevents-batch+json"


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    events: list[msgspec.Raw]


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    events: list[StrictEventIn]


# The fast path decodes a whole batch in one call; only when some event fails (or sends a whole
# number as a string) does the body go through ``_Envelope`` again, event by event, so that each
# failure is reported on its own.
_batch_decoder = msgspec.json.Decoder(_Batch, float_hook=Decimal)
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_event_decoder = msgspec.json.Decoder(EventIn, float_hook=Decimal)
_hash_encoder = msgspec.json.Encoder(decimal_format="number")


class _EventId(msgspec.Struct):
    id: str | None = None


_event_id_decoder = msgspec.json.Decoder(_EventId)


def _event_id_of(raw: msgspec.Raw) -> str | None:
    """The id of an event that failed to decode, so its rejection still names it (error path
    only: the fast path never decodes an event twice)."""
    try:
        event_id = _event_id_decoder.decode(raw).id
    except msgspec.ValidationError:
        return None
    return event_id if event_id and len(event_id) <= 128 else None


@dataclass(frozen=True)
class IngestCaller:
    """Who sends: the key's public prefix and, for a tenant-bound key, its tenant."""

    api_key_prefix: str
    tenant_external_id: str | None = None


@dataclass(frozen=True)
class EventOutcome:
    index: int
    id: str | None
    status: str
    code: str | None
    message: str


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    results: list[EventOutcome] = field(default_factory=list)
    rejected_codes: Counter[str] = field(default_factory=Counter)  # rejections by code

    def add(self, outcome: EventOutcome) -> None:
        self.results.append(outcome)
        if outcome.status == DUPLICATE:
            self.duplicates += 1
        elif outcome.status == CONFLICT:
            self.conflicts += 1
        else:
            self.rejected += 1
            self.rejected_codes[outcome.code or "invalid"] += 1


def _limit_check(count: int) -> None:
    limit = settings.PERCALL_INGEST_MAX_EVENTS
    if not 1 <= count <= limit:
        raise IngestBodyInvalid(
            f"events: {count} events; a batch holds 1 to {limit}", field="events"
        )


def _events_decode(
    *, body: bytes, content_type: str, headers: dict[str, str]
) -> list[EventIn | EventInvalid]:
    """Split the body into events (or per-event errors), whatever the HTTP mode."""
    if content_type not in (CONTENT_CE, CONTENT_CE_BATCH) and "ce-specversion" not in headers:
        try:
            events: list[EventIn | EventInvalid] = list(_batch_decoder.decode(body).events)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass  # some event is invalid, or the body is not a batch: say which below
        else:
            _limit_check(len(events))
            return events
    try:
        if "ce-specversion" in headers:  # CloudEvents binary mode: one event
            try:
                return [cloud_event_to_event(cloud_event_from_headers(headers, body))]
            except EventInvalid as exc:
                return [exc]
        cloud = content_type in (CONTENT_CE, CONTENT_CE_BATCH)
        if content_type == CONTENT_CE:
            raws = [msgspec.json.decode(body, type=msgspec.Raw)]
        elif content_type == CONTENT_CE_BATCH:
            raws = cloud_event_batch_decoder.decode(body)
        else:
            raws = _envelope_decoder.decode(body).events
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise IngestBodyInvalid(
            f'body: not a valid event batch ({exc}); send {{"events": [...]}}, a CloudEvent '
            "or a CloudEvents batch",
            field="events",
        ) from exc
    _limit_check(len(raws))
    decoded: list[EventIn | EventInvalid] = []
    for raw in raws:
        try:
            if cloud:
                decoded.append(cloud_event_to_event(cloud_event_decoder.decode(raw)))
            else:
                decoded.append(_event_decoder.decode(raw))
        except msgspec.ValidationError as exc:
            invalid = EventInvalid(validation_message(exc))
            invalid.event_id = _event_id_of(raw)
            decoded.append(invalid)
        except EventInvalid as exc:
            exc.event_id = _event_id_of(raw)
            decoded.append(exc)
    return decoded


def _payload_hash(
    event_type: str, timestamp: str | None, attributes: list[Any], properties: bytes
) -> str:
    """What makes two sends of one id 'the same event': everything the sender said, with
    numbers compared by value (1.50 == 1.5). A timestamp left to the receive time is not part
    of it, so a retry without a timestamp is still a duplicate."""
    # Decimals come from ``event_normalize`` in canonical form, so equal numbers encode alike.
    canonical = (event_type, timestamp, attributes, properties)
    return hashlib.blake2b(_hash_encoder.encode(canonical), digest_size=16).hexdigest()


def _nul_refused(item: EventIn | EventInvalid) -> EventIn | EventInvalid:
    """The event, or its rejection when a field holds a NUL character."""
    if not isinstance(item, EventIn):
        return item
    field = event_nul_field(item)
    if field is None:
        return item
    invalid = EventInvalid(f"{field}: contains a NUL character (\\u0000), which cannot be stored")
    invalid.event_id = None if field == "id" else item.id
    return invalid


def _tenant_resolve(event: EventIn, caller: IngestCaller) -> str:
    if caller.tenant_external_id is not None:
        if event.tenant is not None and event.tenant != caller.tenant_external_id:
            raise EventInvalid(
                f"tenant: {event.tenant!r} is not the tenant this API key is bound to",
                code="tenant_mismatch",
            )
        return caller.tenant_external_id
    if not event.tenant:
        raise EventInvalid("tenant: required with an operator-wide API key")
    return event.tenant


@dataclass(frozen=True)
class _Intake:
    """What every event of one batch is checked against. Times are ``utc_text``: compared as
    text, which orders them as instants since they all share one fixed-width form."""

    caller: IngestCaller
    tenant_ids: dict[str, str]  # external id -> the tenant's UUID as text
    received_at: str
    oldest: str  # the late window's lower bound, unless backfill
    newest: str  # now plus the allowed clock skew
    backfill: bool
    cost_currency: str
    privacy: PrivacyPolicy


def _event_stage(index: int, item: EventIn, intake: _Intake) -> StagedEvent:
    """Check one decoded event against the batch and shape it for the store; raises
    EventInvalid."""
    tenant_name = _tenant_resolve(item, intake.caller)
    tenant_id = intake.tenant_ids.get(tenant_name)
    if tenant_id is None:
        raise EventInvalid(f"tenant: {tenant_name!r} is not a known tenant", code="unknown_tenant")
    attributes, properties = event_normalize(
        item, default_cost_currency=intake.cost_currency, privacy=intake.privacy
    )
    sent = None if item.timestamp is None else sent_time_text(item.timestamp)
    timestamp = intake.received_at if sent is None else sent
    if timestamp < intake.oldest and not intake.backfill:
        raise EventInvalid(
            f"timestamp: {timestamp} is older than the "
            f"{settings.PERCALL_INGEST_LATE_WINDOW_DAYS}-day late window",
            code="timestamp_too_old",
        )
    if timestamp > intake.newest:
        raise EventInvalid(
            f"timestamp: {timestamp} is more than "
            f"{settings.PERCALL_INGEST_FUTURE_SKEW_SECONDS} s in the future",
            code="timestamp_in_future",
        )
    payload_hash = _payload_hash(item.type, sent, attributes, properties)
    # tuple.__new__ directly: a NamedTuple's own __new__ is a Python call, per event.
    return tuple.__new__(StagedEvent, (
        index, payload_hash, tenant_id, timestamp, item.id, item.type, attributes,
        properties.decode(),
    ))  # fmt: skip


def events_ingest(
    *,
    body: bytes,
    content_type: str,
    headers: dict[str, str],
    caller: IngestCaller,
    backfill: bool = False,
) -> IngestResult:
    """Validate and store a batch. Returns the counts and the outcome of every event that was
    not accepted. ``backfill`` (admin only) lifts the late window for corrections and imports."""
    now = timezone.now()
    decoded = _events_decode(body=body, content_type=content_type, headers=headers)
    if b"\\u0000" in body:  # JSON's only way to say NUL: look for it in the events only then
        decoded = [_nul_refused(item) for item in decoded]
    names = {
        item.tenant or caller.tenant_external_id for item in decoded if isinstance(item, EventIn)
    }
    received_at = timestamp_to_ms(now)
    tenants = tenant_ids_by_external_id(external_ids={n for n in names if n})
    intake = _Intake(
        caller=caller,
        tenant_ids={name: str(tenant_id) for name, (tenant_id, _) in tenants.items()},
        received_at=utc_text(received_at),
        oldest=utc_text(now - timedelta(days=settings.PERCALL_INGEST_LATE_WINDOW_DAYS)),
        newest=utc_text(now + timedelta(seconds=settings.PERCALL_INGEST_FUTURE_SKEW_SECONDS)),
        backfill=backfill,
        cost_currency=settings.PERCALL_DEFAULT_COST_CURRENCY,
        privacy=privacy_policy(),
    )
    result = IngestResult()
    staged: dict[tuple[str, str], StagedEvent] = {}
    for index, item in enumerate(decoded):
        try:
            if isinstance(item, EventInvalid):
                raise item
            event = _event_stage(index, item, intake)
        except EventInvalid as exc:
            event_id = item.id if isinstance(item, EventIn) else item.event_id
            result.add(EventOutcome(index, event_id, REJECTED, exc.code, exc.message))
            continue
        first = staged.setdefault((event.tenant_id, item.id), event)
        if first is not event:  # the same id twice in one batch: the first one stands
            result.add(_repeat_outcome(index, item.id, first.payload_hash == event.payload_hash))

    with transaction.atomic():
        stored = _store(
            staged=list(staged.values()), result=result, received_at=received_at, backfill=backfill
        )
        _record(
            stored=stored,
            result=result,
            caller=caller,
            content_type=content_type,
            backfill=backfill,
            received_at=received_at,
            first_calls=dict(tenants.values()),
        )
    result.results.sort(key=lambda outcome: outcome.index)
    return result


def _repeat_outcome(index: int, event_id: str, same: bool) -> EventOutcome:
    if same:
        return EventOutcome(
            index, event_id, DUPLICATE, "duplicate", "already received; stored once"
        )
    return EventOutcome(
        index,
        event_id,
        CONFLICT,
        "conflict",
        "this id was already used for a different payload; the first one stands",
    )


def _store(
    *, staged: list[StagedEvent], result: IngestResult, received_at: datetime, backfill: bool
) -> list[StagedEvent]:
    if not staged:
        return []
    months = {event.timestamp[:7] for event in staged}  # 'YYYY-MM'
    event_partitions_ensure(months={(int(m[:4]), int(m[5:])) for m in months})
    existing = event_rows_append(events=staged, received_at=received_at, backfill=backfill)
    stored = []
    for item in staged:
        if item.position in existing:
            same = existing[item.position] == item.payload_hash
            result.add(_repeat_outcome(item.position, item.event_id, same))
        else:
            stored.append(item)
    result.accepted = len(stored)
    return stored


def _record(
    *,
    stored: list[StagedEvent],
    result: IngestResult,
    caller: IngestCaller,
    content_type: str,
    backfill: bool,
    received_at: datetime,
    first_calls: dict[UUID, datetime | None],
) -> None:
    """The batch's audit row, its per-hour tallies, rollup marks and first-call times."""
    batch = IngestBatch.objects.create(
        received_at=received_at,
        api_key_prefix=caller.api_key_prefix,
        content_type=content_type[:64],
        backfill=backfill,
        accepted=result.accepted,
        duplicates=result.duplicates,
        conflicts=result.conflicts,
        rejected=result.rejected,
        rejected_codes=dict(sorted(result.rejected_codes.items())),
    )
    if not stored:
        return
    # The first 13 characters of a UTC text are its hour ('YYYY-MM-DDTHH'); tenant ids and hours
    # stay text, as the inserts send them.
    by_hour = Counter((event.tenant_id, event.timestamp[:13]) for event in stored)
    hours = {(tenant_id, f"{hour}:00:00Z"): count for (tenant_id, hour), count in by_hour.items()}
    rows_insert(
        table=IngestTally._meta.db_table,
        columns=("batch_id", "tenant_id", "hour", "accepted"),
        types=("bigint", "uuid", "timestamptz", "integer"),
        rows=[(batch.id, tenant_id, hour, count) for (tenant_id, hour), count in hours.items()],
    )
    rollup_pending_mark(tenant_hours=set(hours), marked_at=received_at)
    earliest: dict[str, str] = {}
    for event in stored:
        seen = earliest.get(event.tenant_id)
        if seen is None or event.timestamp < seen:
            earliest[event.tenant_id] = event.timestamp
    earlier = {}
    for tenant_text, text in earliest.items():
        tenant_id, at = UUID(tenant_text), datetime.fromisoformat(text)
        known = first_calls.get(tenant_id)
        if known is None or at < known:
            earlier[tenant_id] = at
    if earlier:
        tenant_first_calls_record(first_calls=earlier)
    job_enqueue_on_commit(
        name="metering.rollup_pending",
        debounce_key="metering.rollup",
        debounce_seconds=settings.PERCALL_ROLLUP_DEBOUNCE_SECONDS,
    )
