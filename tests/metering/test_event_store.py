"""The event store's write side on PostgreSQL: a batch of new keys is copied straight into the
key and event tables; a batch holding a stored key falls back to staging, and what the first
attempt wrote is gone."""

from datetime import UTC, datetime

import pytest
from django.db import connection, transaction

from apps.metering.models import Event, EventKey
from apps.metering.services.event_schema import ATTRIBUTE_COLUMNS
from apps.metering.services.event_store import StagedEvent, event_rows_append

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
RECEIVED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HASH_A = "a" * 32
HASH_B = "b" * 32


def staged(tenant, position, event_id, payload_hash=HASH_A, minute=0):
    attributes = [None] * len(ATTRIBUTE_COLUMNS)
    attributes[ATTRIBUTE_COLUMNS.index("endpoint")] = "/v1/search"
    return StagedEvent(
        position=position,
        payload_hash=payload_hash,
        tenant_id=str(tenant.id),
        timestamp=f"2026-11-20T11:{minute:02d}:00.000Z",
        event_id=event_id,
        type="api.call",
        attributes=attributes,
        properties="{}",
    )


def staged_rows() -> int:
    """Rows in this connection's staging table (committed batches leave none)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('pg_temp.percall_ingest_stage')")
        if cursor.fetchone()[0] is None:
            return 0
        cursor.execute("SELECT count(*) FROM percall_ingest_stage")
        return cursor.fetchone()[0]


def append(*events):
    return event_rows_append(events=events, received_at=RECEIVED, backfill=False)


def test_a_batch_of_new_events_is_stored_without_staging(make_tenant):
    acme, globex = make_tenant("acme"), make_tenant("globex")

    with transaction.atomic():
        existing = append(staged(acme, 0, "e2"), staged(globex, 1, "e1"), staged(acme, 2, "e1"))
        assert staged_rows() == 0

    assert existing == {}
    stored = set(Event.objects.values_list("tenant__external_id", "event_id", "endpoint"))
    assert stored == {
        ("acme", "e1", "/v1/search"),
        ("acme", "e2", "/v1/search"),
        ("globex", "e1", "/v1/search"),
    }
    assert EventKey.objects.count() == 3


def test_a_batch_with_a_stored_key_falls_back_and_stores_the_rest_once(make_tenant):
    acme = make_tenant("acme")
    with transaction.atomic():
        append(staged(acme, 0, "e1"), staged(acme, 1, "e2"))

    with transaction.atomic():
        existing = append(
            staged(acme, 0, "e3", minute=3),
            staged(acme, 1, "e2", payload_hash=HASH_B, minute=2),  # reused with a new payload
            staged(acme, 2, "e1"),  # a resend
            staged(acme, 3, "e4", minute=4),
        )
        assert staged_rows() == 4  # the general path ran

    assert existing == {1: HASH_A, 2: HASH_A}  # the stored hashes: the first payload stays
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["e1", "e2", "e3", "e4"]
    assert Event.objects.get(event_id="e2").timestamp.minute == 0
    keys = dict(EventKey.objects.values_list("event_id", "payload_hash"))
    assert keys == {"e1": HASH_A, "e2": HASH_A, "e3": HASH_A, "e4": HASH_A}


def test_a_fallback_inside_a_longer_transaction_keeps_its_earlier_writes(make_tenant):
    # The fast attempt rolls back to its own savepoint, not the caller's transaction.
    acme = make_tenant("acme")
    with transaction.atomic():
        append(staged(acme, 0, "e1"))
        existing = append(staged(acme, 0, "e1"), staged(acme, 1, "e2", minute=1))
        append(staged(acme, 0, "e3", minute=3))

    assert existing == {0: HASH_A}
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["e1", "e2", "e3"]
    assert EventKey.objects.count() == 3
