"""The per-tenant ingestion rate: ``PERCALL_INGEST_EVENTS_PER_MINUTE`` events a minute per
tenant (0, the default: no limit), counted a batch at a time before anything is stored.

A batch that would take any of its tenants over the rate is refused whole with 429 and
``Retry-After``, and charges no tenant anything; a batch larger than the whole rate could never
pass, so it is a 413 telling the sender to split it. Every event of a batch counts, rejected
ones too: validating them is the work the rate protects. Budgets and spend never stop
ingestion; only this operator-set ceiling does.
"""

import msgspec
from django.conf import settings

from apps.core.api.throttling import WINDOW_SECONDS, rate_limited
from apps.core.ratelimit import rate_key, rates_consume
from apps.metering.errors import IngestBodyTooLarge

CONTENT_CE = "application/cloudevents+json"
CONTENT_CE_BATCH = "application/cloudevents-batch+json"


class _Tenant(msgspec.Struct):
    """Only the field that names an event's tenant; every other field is ignored here."""

    tenant: str | None = None
    subject: str | None = None  # CloudEvents name the tenant ``subject``


class _Envelope(msgspec.Struct):
    events: list[msgspec.Raw]


_envelope = msgspec.json.Decoder(_Envelope)
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_tenant = msgspec.json.Decoder(_Tenant)


def _tenant_of(raw: msgspec.Raw, cloud: bool) -> str | None:
    try:
        item = _tenant.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None  # not an event object: rejected by ingestion, and no tenant's to count
    return item.subject if cloud else item.tenant


def tenant_event_counts(
    *, body: bytes, content_type: str, headers: dict[str, str], bound_tenant: str | None
) -> dict[str, int]:
    """Events per tenant external id in a body, as ingestion will read it. ``bound_tenant`` is
    a tenant-bound key's tenant, which every event counts against. Empty when the body is not a
    batch at all (ingestion refuses it, storing nothing)."""
    if "ce-specversion" in headers:
        name = bound_tenant or headers.get("ce-subject")
        return {name: 1} if name else {}
    try:
        if content_type == CONTENT_CE:
            raws = [msgspec.Raw(body)]
        elif content_type == CONTENT_CE_BATCH:
            raws = _raw_list.decode(body)
        else:
            raws = _envelope.decode(body).events
    except (msgspec.ValidationError, msgspec.DecodeError):
        return {}
    if bound_tenant is not None:
        return {bound_tenant: len(raws)}
    counts: dict[str, int] = {}
    cloud = content_type in (CONTENT_CE, CONTENT_CE_BATCH)
    for raw in raws:
        name = _tenant_of(raw, cloud)
        if name:
            counts[name] = counts.get(name, 0) + 1
    return counts


def ingest_rate_check(
    *, body: bytes, content_type: str, headers: dict[str, str], bound_tenant: str | None
) -> None:
    """Charge the batch's events to each of its tenants' rate, or refuse it whole."""
    limit = settings.PERCALL_INGEST_EVENTS_PER_MINUTE
    if limit <= 0:
        return
    counts = tenant_event_counts(
        body=body, content_type=content_type, headers=headers, bound_tenant=bound_tenant
    )
    if sum(counts.values()) > settings.PERCALL_INGEST_MAX_EVENTS:
        return  # ingestion refuses the whole batch for its size: nothing to charge
    for name, count in counts.items():
        if count > limit:
            raise IngestBodyTooLarge(
                f"events: {count} events for tenant {name!r} in one batch, more than its "
                f"{limit} a minute ingestion rate; split the batch",
                field="events",
            )
    decision = rates_consume(
        costs={rate_key("ingest-tenant", name): count for name, count in counts.items()},
        limit=limit,
        window_seconds=WINDOW_SECONDS,
    )
    if not decision.allowed:
        raise rate_limited(
            decision,
            f"rate: this batch would take a tenant over its {limit} events a minute "
            "ingestion rate; nothing of it was stored",
        )
