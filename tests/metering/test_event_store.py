"""The event store's write side on PostgreSQL: a batch of new keys is copied straight into the
key and event tables; a batch holding a stored key falls back to staging, and what the first
attempt wrote is gone. Overlapping batches wait for each other in one key order and never
deadlock, also against a batch that creates a month's partition."""

import threading
from datetime import UTC, datetime
from uuid import UUID, uuid4

import psycopg
import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError

from apps.metering.models import Event, EventKey
from apps.metering.services import partitions
from apps.metering.services.event_schema import ATTRIBUTE_COLUMNS
from apps.metering.services.event_store import StagedEvent, _key_order, event_rows_append
from apps.metering.services.ingest import IngestResult, _store
from tests.concurrency import lock_waiters
from tests.workers import wait_for

pytestmark = [pytest.mark.postgres]
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


@pytest.mark.django_db
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


@pytest.mark.django_db
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
            staged(acme, 4, "e0", minute=5),  # sorts first: the first COPY wrote its key
        )
        assert staged_rows() == 5  # the general path ran

    assert existing == {1: HASH_A, 2: HASH_A}  # the stored hashes: the first payload stays
    stored = sorted(Event.objects.values_list("event_id", flat=True))
    assert stored == ["e0", "e1", "e2", "e3", "e4"]
    assert Event.objects.get(event_id="e2").timestamp.minute == 0
    keys = dict(EventKey.objects.values_list("event_id", "payload_hash"))
    assert keys == dict.fromkeys(["e0", "e1", "e2", "e3", "e4"], HASH_A)


@pytest.mark.django_db
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


@pytest.mark.django_db(transaction=True)  # no test transaction around it
def test_appending_outside_a_transaction_is_refused(make_tenant):
    acme = make_tenant("acme")

    with pytest.raises(TransactionManagementError, match="inside a transaction"):
        append(staged(acme, 0, "e1"))

    assert not EventKey.objects.exists()


@pytest.mark.django_db
def test_the_key_order_is_the_databases(make_tenant):
    # Python sorts the fast path's keys; SQL sorts the general path's. Any mismatch could let
    # two batches take the same keys in opposite orders.
    awkward = ["a", "B", "b", "_x", "-x", "~", "é", "e", "E\u0301", "\U0001f600", "\uffff"]
    awkward += ["ab", "a b", "a\tb", "a\\b", "1", "10", "9", "ß", "ss", "\u00a0", " "]
    tenants = [UUID(int=0), UUID(int=2**127), UUID(int=2**128 - 1), UUID(int=15 << 124)]
    tenants += [uuid4() for _ in range(8)]
    events = [
        StagedEvent(0, HASH_A, str(t), "", event_id, "api.call", [], "{}")
        for t in tenants
        for event_id in awkward
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t::text, e FROM unnest(%s::uuid[], %s::text[]) AS k(t, e) "
            'ORDER BY t, e COLLATE "C"',
            [[e.tenant_id for e in events], [e.event_id for e in events]],
        )
        database_order = cursor.fetchall()

    assert [_key_order(e) for e in sorted(events, key=_key_order)] == database_order


def _raw_connection() -> psycopg.Connection:
    """A connection of its own to the test database, outside Django."""
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["fast", "general"])
def test_a_batch_waits_at_its_lowest_contested_key_before_writing_higher_ones(make_tenant, path):
    # Another transaction holds key e2, uncommitted. A batch sent as (e3, e2) must wait at e2
    # before it writes e3, so the holder can still write e3: the order two overlapping
    # batches take their keys in, which is why they cannot deadlock.
    acme = make_tenant("acme")
    with transaction.atomic():
        partitions.event_partitions_ensure(months={(2026, 11)})
        if path == "general":  # a stored key, sorting first: the fast COPY fails at once
            append(staged(acme, 0, "e1"))
    holder = _raw_connection()
    insert_key = (
        'INSERT INTO metering_event_key (tenant_id, event_id, payload_hash, "timestamp") '
        "VALUES (%s, %s, %s, now())"
    )
    holder.execute(insert_key, [acme.id, "e2", HASH_A])
    outcome = {}

    def send():
        try:
            with transaction.atomic():
                batch = [staged(acme, 0, "e3"), staged(acme, 1, "e2")]
                if path == "general":
                    batch.append(staged(acme, 2, "e1"))
                outcome["existing"] = append(*batch)
        except Exception as exc:  # reported by the assertions below
            outcome["error"] = exc
        finally:
            connection.close()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        wait_for(lambda: lock_waiters() == 1, timeout=20, what="the sender to wait on e2")
        holder.execute("SET lock_timeout = '500ms'")  # below deadlock_timeout (1 s)
        try:
            holder.execute(insert_key, [acme.id, "e3", HASH_A])
            holder_wrote_e3 = True
        except psycopg.errors.LockNotAvailable:
            holder_wrote_e3 = False
    finally:
        holder.rollback()  # frees e2 (and e3): the sender goes on
        holder.close()
        sender.join(timeout=30)

    assert holder_wrote_e3
    assert "error" not in outcome, outcome
    assert outcome["existing"] == ({2: HASH_A} if path == "general" else {})
    assert EventKey.objects.filter(event_id__in=["e2", "e3"]).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_batch_creating_a_partition_does_not_deadlock_with_a_fast_batch(make_tenant, monkeypatch):
    # T1 takes the fast path into an existing month and pauses after its keys. T2 overlaps
    # one of T1's keys and brings an event of a month with no partition, which it creates
    # first, locking the event table; then it waits for T1's key. T1 must not then need a
    # lock T2 holds.
    acme = make_tenant("acme")
    with transaction.atomic():
        partitions.event_partitions_ensure(months={(2026, 11)})
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS metering_event_p2024_03")
    partitions._known.discard((2024, 3))
    keys_written, resume = threading.Event(), threading.Event()
    first_writer: list[threading.Thread] = []
    release = transaction.savepoint_commit

    def release_then_pause(sid, using=None):
        release(sid, using)
        if threading.current_thread() in first_writer:
            keys_written.set()
            resume.wait(timeout=20)

    monkeypatch.setattr(transaction, "savepoint_commit", release_then_pause)
    errors = []

    def store(*events):
        try:
            with transaction.atomic():
                _store(
                    staged=list(events), result=IngestResult(), received_at=RECEIVED, backfill=True
                )
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    old = staged(acme, 0, "k0")._replace(timestamp="2024-03-05T00:00:00.000Z")
    t1 = threading.Thread(target=store, args=(staged(acme, 0, "k1"), staged(acme, 1, "k2")))
    t2 = threading.Thread(target=store, args=(old, staged(acme, 1, "k1")))
    first_writer.append(t1)
    t1.start()
    assert keys_written.wait(timeout=20)
    t2.start()
    try:
        wait_for(lambda: lock_waiters() == 1, timeout=20, what="T2 to wait on T1")
    finally:
        resume.set()
        t1.join(timeout=30)
        t2.join(timeout=30)

    assert not errors, errors
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["k0", "k1", "k2"]
    assert EventKey.objects.count() == 3
