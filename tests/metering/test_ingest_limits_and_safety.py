"""The body limit, exactly-once under failures and concurrency, and monthly partitions."""

import json
from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection
from django.test import Client

from apps.metering.models import Event, EventKey, IngestBatch, IngestTally
from apps.metering.services import ingest, partitions
from tests.concurrency import run_together

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
URL = "/api/v1/events"
LIMIT = 5 * 1024 * 1024  # PERCALL_INGEST_MAX_BODY_BYTES: 5 MB


def event(event_id, **fields):
    return {"id": event_id, "tenant": "acme", "type": "api.call", **fields}


def batch(*event_ids):
    return json.dumps({"events": [event(i, timestamp="2026-11-20T12:00:00Z") for i in event_ids]})


def padded(body: str, size: int) -> bytes:
    """``body`` followed by JSON whitespace up to exactly ``size`` bytes."""
    raw = body.encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def partition_of(event_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM metering_event WHERE event_id = %s", [event_id]
        )
        return cursor.fetchone()[0]


def partitions_of_event_table() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'metering_event'::regclass"
        )
        return {name for (name,) in cursor.fetchall()}


@pytest.fixture
def acme_key(make_tenant, make_key):
    make_tenant("acme")
    return make_key()


def post(client, key, body, **extra):
    return client.post(
        URL,
        body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
        **extra,
    )


# --- the 5 MB limit ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_body_of_exactly_5_mb_is_read(client, acme_key, clock):
    response = post(client, acme_key, padded(batch("e1"), LIMIT))

    assert response.status_code == 200
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_a_body_one_byte_over_5_mb_is_a_413_and_nothing_is_stored(client, acme_key, clock):
    response = post(client, acme_key, padded(batch("e1"), LIMIT + 1))

    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert str(LIMIT) in error["message"]
    assert not Event.objects.exists()
    assert not IngestBatch.objects.exists()


@pytest.mark.django_db
def test_a_declared_length_over_5_mb_is_refused_before_the_body_is_read(client, acme_key, clock):
    class Unreadable:
        """A request stream that fails the test if the view reads from it."""

        def read(self, *args):
            raise AssertionError("the body was read")

        readline = read

    response = post(
        client,
        acme_key,
        batch("e1"),
        CONTENT_LENGTH=str(LIMIT + 1),
        **{"wsgi.input": Unreadable()},
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not Event.objects.exists()


# --- a failed insert is retried, never lost ------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_retry_after_a_failed_insert_stores_the_event_once(
    client, acme_key, monkeypatch, is_postgres
):
    # A month no other test writes to, so its partition is created by this test's first send.
    with time_machine.travel(datetime(2027, 3, 10, 9, tzinfo=UTC), tick=False):
        body = json.dumps({"events": [event("e1", timestamp="2027-03-10T08:59:00Z")]})
        real_mark = ingest.rollup_pending_mark
        failures = []

        def mark_failing_once(**kwargs):
            if not failures:
                failures.append(1)
                raise RuntimeError("database went away mid-batch")
            return real_mark(**kwargs)

        monkeypatch.setattr(ingest, "rollup_pending_mark", mark_failing_once)
        client.raise_request_exception = False

        first = post(client, acme_key, body)

        assert first.status_code == 500
        assert not Event.objects.exists()
        assert not EventKey.objects.exists()
        assert not IngestBatch.objects.exists()

        second = post(client, acme_key, body)

        assert second.status_code == 200
        assert second.json()["accepted"] == 1
        assert Event.objects.count() == 1
        assert EventKey.objects.count() == 1
        assert sum(IngestTally.objects.values_list("accepted", flat=True)) == 1
        if is_postgres:  # the rolled-back partition was created again, not assumed
            assert partition_of("e1") == "metering_event_p2027_03"


# --- PostgreSQL: concurrent sends ----------------------------------------------------------


def send_concurrently(key: str, bodies: list[str]) -> list[tuple[int, dict]]:
    """POST each body from its own thread and connection, all released at once."""

    def sender(body: str):
        def send() -> tuple[int, dict]:
            response = post(Client(), key, body)
            return response.status_code, response.json()

        return send

    return run_together(*(sender(body) for body in bodies), timeout=120)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_sends_store_each_event_exactly_once(acme_key, clock):
    body = batch(*(f"e{i:03d}" for i in range(200)))

    answers = send_concurrently(acme_key, [body] * 8)

    assert {status for status, _ in answers} == {200}
    assert sum(answer["accepted"] for _, answer in answers) == 200
    assert all(answer["accepted"] + answer["duplicates"] == 200 for _, answer in answers)
    assert all(answer["conflicts"] == answer["rejected"] == 0 for _, answer in answers)
    assert Event.objects.count() == 200
    assert EventKey.objects.count() == 200
    assert sum(IngestTally.objects.values_list("accepted", flat=True)) == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_overlapping_batches_store_the_union_once(acme_key, clock):
    # Thread t sends events 25t .. 25t+99: neighbours share 75 events, the union is e000..e274;
    # every other thread sends its window backwards, so keys collide in both orders.
    windows = [[f"e{i:03d}" for i in range(25 * t, 25 * t + 100)] for t in range(8)]
    bodies = [batch(*(ids if t % 2 else reversed(ids))) for t, ids in enumerate(windows)]

    answers = send_concurrently(acme_key, bodies)

    assert {status for status, _ in answers} == {200}
    assert sum(answer["accepted"] for _, answer in answers) == 275
    assert all(answer["accepted"] + answer["duplicates"] == 100 for _, answer in answers)
    assert Event.objects.count() == 275
    assert EventKey.objects.count() == 275
    stored = set(Event.objects.values_list("event_id", flat=True))
    assert stored == {f"e{i:03d}" for i in range(275)}


# --- PostgreSQL: monthly partitions --------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db
def test_events_land_in_the_partition_of_their_month(client, acme_key, clock):
    body = json.dumps(
        {
            "events": [
                event("nov", timestamp="2026-11-20T12:00:00Z"),
                event("oct", timestamp="2026-10-31T23:59:59.999Z"),
            ]
        }
    )

    assert post(client, acme_key, body).json()["accepted"] == 2

    assert partition_of("nov") == "metering_event_p2026_11"
    assert partition_of("oct") == "metering_event_p2026_10"
    assert {"metering_event_p2026_10", "metering_event_p2026_11"} <= partitions_of_event_table()


@pytest.mark.postgres
@pytest.mark.django_db
def test_creating_a_month_moves_its_rows_out_of_the_default_partition(
    client, acme_key, monkeypatch
):
    # Events ingested while 2031-03 had no partition of its own fall into the DEFAULT one.
    monkeypatch.setattr(ingest, "event_partitions_ensure", lambda *, months: None)
    with time_machine.travel(datetime(2031, 4, 1, 0, 1, tzinfo=UTC), tick=False):
        body = json.dumps(
            {
                "events": [
                    event("march-1", timestamp="2031-03-01T00:00:00Z"),
                    event("march-31", timestamp="2031-03-31T23:59:59.999Z"),
                    event("april", timestamp="2031-04-01T00:00:00Z"),
                ]
            }
        )
        assert post(client, acme_key, body).json()["accepted"] == 3
    assert partition_of("march-1") == "metering_event_default"

    partitions._create(2031, 3)

    assert partition_of("march-1") == "metering_event_p2031_03"
    assert partition_of("march-31") == "metering_event_p2031_03"
    assert partition_of("april") == "metering_event_default"
    assert "metering_event_default" in partitions_of_event_table()  # re-attached
    assert Event.objects.count() == 3
    partitions._create(2031, 3)  # a second creator finds it done
    assert Event.objects.count() == 3


# --- NUL characters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": "a\u0000b"}, "id"),
        ({"tenant": "ac\u0000me"}, "tenant"),
        ({"endpoint": "/v1/\u0000"}, "endpoint"),
        ({"properties": {"note": "a\u0000b"}}, "properties"),
        ({"properties": {"k\u0000": 1}}, "properties"),
    ],
)
def test_an_event_with_a_nul_character_is_rejected_alone(client, acme_key, clock, fields, field):
    """PostgreSQL stores NUL in no text or jsonb value: the event is refused naming the field
    (207), its neighbour is stored, and the batch is no server error."""
    bad = event("nul-1", timestamp="2026-11-20T12:00:00Z") | fields
    good = event("fine-1", timestamp="2026-11-20T12:00:00Z")

    response = post(client, acme_key, json.dumps({"events": [bad, good]}))

    assert response.status_code == 207
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["results"][0]["message"].startswith(f"{field}: contains a NUL character")
    assert list(Event.objects.values_list("event_id", flat=True)) == ["fine-1"]
