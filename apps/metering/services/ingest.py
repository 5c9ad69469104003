"""Ingestion: a batch of events in, one outcome per event out, each event stored at most once.

The fast path builds no serializer or ORM object per event: msgspec decodes each event from its
bytes, plain checks validate it, and ``event_store`` writes the batch in one statement. One bad
event never sinks its batch; only a body that is not a batch at all is refused whole.
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
    ATTRIBUTE_COLUMNS,
    EventIn,
    EventInvalid,
    event_normalize,
    timestamp_to_ms,
)
from apps.metering.services.event_store import event_rows_append
from apps.metering.services.partitions import event_partitions_ensure
from apps.metering.services.rollup import rollup_pending_mark
from apps.tenants.selectors import tenant_ids_by_external_id
from apps.tenants.services.tenants import tenant_first_call_record

ACCEPTED, DUPLICATE, CONFLICT, REJECTED = "accepted", "duplicate", "conflict", "rejected"
CONTENT_JSON = "application/json"
CONTENT_CE = "application/cloudevents+json"
CONTENT_CE_BATCH = "application/cloudevents-batch+json"


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    events: list[msgspec.Raw]


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_event_decoder = msgspec.json.Decoder(EventIn, float_hook=Decimal)
_hash_encoder = msgspec.json.Encoder(decimal_format="number", order="sorted")
_DECIMAL_POSITIONS = tuple(
    ATTRIBUTE_COLUMNS.index(c) for c in ("credits", "quantity", "cost", "latency_ms")
)


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

    def add(self, outcome: EventOutcome) -> None:
        self.results.append(outcome)
        if outcome.status == DUPLICATE:
            self.duplicates += 1
        elif outcome.status == CONFLICT:
            self.conflicts += 1
        else:
            self.rejected += 1


@dataclass
class _Staged:
    index: int
    event: EventIn
    tenant_id: UUID
    timestamp: datetime
    payload_hash: str
    row: tuple[Any, ...]


def _events_decode(
    *, body: bytes, content_type: str, headers: dict[str, str]
) -> list[EventIn | EventInvalid]:
    """Split the body into events (or per-event errors), whatever the HTTP mode."""
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
    limit = settings.PERCALL_INGEST_MAX_EVENTS
    if not 1 <= len(raws) <= limit:
        raise IngestBodyInvalid(
            f"events: {len(raws)} events; a batch holds 1 to {limit}", field="events"
        )
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


def _payload_hash(event: EventIn, attributes: list[Any], properties: bytes) -> str:
    """What makes two sends of one id 'the same event': everything the sender said, with
    numbers compared by value (1.50 == 1.5). A timestamp left to the receive time is not part
    of it, so a retry without a timestamp is still a duplicate."""
    values = list(attributes)
    for position in _DECIMAL_POSITIONS:
        if values[position] is not None:
            values[position] = values[position].normalize()
    canonical = (event.type, event.timestamp, values, properties)
    return hashlib.blake2b(_hash_encoder.encode(canonical), digest_size=16).hexdigest()


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
    """What every event of one batch is checked against."""

    caller: IngestCaller
    tenants: dict[str, tuple[UUID, datetime | None]]
    received_at: datetime
    oldest: datetime  # the late window's lower bound, unless backfill
    newest: datetime  # now plus the allowed clock skew
    backfill: bool
    cost_currency: str


def _event_stage(index: int, item: EventIn, intake: _Intake) -> _Staged:
    """Check one decoded event against the batch and shape its row; raises EventInvalid."""
    tenant_name = _tenant_resolve(item, intake.caller)
    if tenant_name not in intake.tenants:
        raise EventInvalid(f"tenant: {tenant_name!r} is not a known tenant", code="unknown_tenant")
    tenant_id = intake.tenants[tenant_name][0]
    attributes, properties = event_normalize(item, default_cost_currency=intake.cost_currency)
    timestamp = timestamp_to_ms(item.timestamp) if item.timestamp else intake.received_at
    if timestamp < intake.oldest and not intake.backfill:
        raise EventInvalid(
            f"timestamp: {timestamp.isoformat()} is older than the "
            f"{settings.PERCALL_INGEST_LATE_WINDOW_DAYS}-day late window",
            code="timestamp_too_old",
        )
    if timestamp > intake.newest:
        raise EventInvalid(
            f"timestamp: {timestamp.isoformat()} is more than "
            f"{settings.PERCALL_INGEST_FUTURE_SKEW_SECONDS} s in the future",
            code="timestamp_in_future",
        )
    payload_hash = _payload_hash(item, attributes, properties)
    row = (
        index, payload_hash, tenant_id, timestamp, item.id, item.type, intake.received_at,
        *attributes, properties.decode(), intake.backfill,
    )  # fmt: skip
    return _Staged(index, item, tenant_id, timestamp, payload_hash, row)


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
    names = {
        item.tenant or caller.tenant_external_id for item in decoded if isinstance(item, EventIn)
    }
    intake = _Intake(
        caller=caller,
        tenants=tenant_ids_by_external_id(external_ids={n for n in names if n}),
        received_at=timestamp_to_ms(now),
        oldest=now - timedelta(days=settings.PERCALL_INGEST_LATE_WINDOW_DAYS),
        newest=now + timedelta(seconds=settings.PERCALL_INGEST_FUTURE_SKEW_SECONDS),
        backfill=backfill,
        cost_currency=settings.PERCALL_DEFAULT_COST_CURRENCY,
    )
    result = IngestResult()
    staged: dict[tuple[UUID, str], _Staged] = {}
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
        stored = _store(staged=list(staged.values()), result=result)
        _record(
            stored=stored,
            result=result,
            caller=caller,
            content_type=content_type,
            backfill=backfill,
            received_at=intake.received_at,
            first_calls=dict(intake.tenants.values()),
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


def _store(*, staged: list[_Staged], result: IngestResult) -> list[_Staged]:
    if not staged:
        return []
    event_partitions_ensure(months={(s.timestamp.year, s.timestamp.month) for s in staged})
    existing = event_rows_append(rows=[s.row for s in staged])
    stored = []
    for item in staged:
        if item.index in existing:
            same = existing[item.index] == item.payload_hash
            result.add(_repeat_outcome(item.index, item.event.id, same))
        else:
            stored.append(item)
    result.accepted = len(stored)
    return stored


def _record(
    *,
    stored: list[_Staged],
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
    )
    if not stored:
        return
    hours = Counter(
        (s.tenant_id, s.timestamp.replace(minute=0, second=0, microsecond=0)) for s in stored
    )
    rows_insert(
        table=IngestTally._meta.db_table,
        columns=("batch_id", "tenant_id", "hour", "accepted"),
        rows=[(batch.id, tenant_id, hour, count) for (tenant_id, hour), count in hours.items()],
    )
    rollup_pending_mark(tenant_hours=set(hours), marked_at=received_at)
    earliest: dict[UUID, datetime] = {}
    for item in stored:
        seen = earliest.get(item.tenant_id)
        if seen is None or item.timestamp < seen:
            earliest[item.tenant_id] = item.timestamp
    for tenant_id, at in sorted(earliest.items()):  # one lock order: no deadlocks
        known = first_calls.get(tenant_id)
        if known is None or at < known:
            tenant_first_call_record(tenant_id=tenant_id, at=at)
    job_enqueue_on_commit(
        name="metering.rollup_pending",
        debounce_key="metering.rollup",
        debounce_seconds=settings.PERCALL_ROLLUP_DEBOUNCE_SECONDS,
    )
