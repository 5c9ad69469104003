"""Every per-event outcome of POST /api/v1/events, and the answers for bodies and keys that are
refused whole."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.conf import settings

from apps.metering.models import Event, EventKey, IngestBatch
from apps.tenants.services.api_keys import api_key_create, api_key_revoke

# Microseconds on the clock, so the millisecond truncation of the receive time shows.
NOW = datetime(2026, 11, 20, 12, 30, 45, 678901, tzinfo=UTC)
RECEIVED = datetime(2026, 11, 20, 12, 30, 45, 678000, tzinfo=UTC)
URL = "/api/v1/events"
DROP = object()  # an event field to leave out
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


def event(event_id="e1", **fields):
    """One valid event of tenant acme; a field set to DROP is left out."""
    body = {
        "id": event_id,
        "tenant": "acme",
        "type": "api.call",
        "timestamp": "2026-11-20T12:00:00Z",
    }
    return {name: value for name, value in (body | fields).items() if value is not DROP}


@pytest.fixture
def operator(make_tenant, make_key, api):
    """An operator-wide ingest+read+admin client, with tenant acme in place."""
    make_tenant("acme")
    return api(make_key())


def send(client, *events, backfill=False):
    return client.post(URL + ("?backfill=true" if backfill else ""), {"events": list(events)})


def counts(response):
    body = response.json()
    return {name: body[name] for name in ("accepted", "duplicates", "conflicts", "rejected")}


def outcomes(response):
    return [(r["index"], r["id"], r["status"], r["code"]) for r in response.json()["results"]]


def only_result(response):
    (result,) = response.json()["results"]
    return result


# --- accepted, duplicate, conflict ---------------------------------------------------------


def test_accepted_event_is_stored_and_the_response_has_exactly_the_documented_keys(operator):
    response = send(operator, event("e1", endpoint="/v1/chat", input_tokens=12, timestamp=DROP))

    assert response.status_code == 200
    assert response.json() == {
        "accepted": 1,
        "duplicates": 0,
        "conflicts": 0,
        "rejected": 0,
        "results": [],
    }
    stored = Event.objects.get()
    assert (stored.event_id, stored.endpoint, stored.input_tokens) == ("e1", "/v1/chat", 12)
    assert stored.timestamp == stored.received_at == RECEIVED  # default: receive time, in ms
    assert stored.backfill is False


def test_same_event_sent_twice_is_stored_once_and_answered_as_a_duplicate(operator):
    send(operator, event("e1", cost="0.25"))

    response = send(operator, event("e1", cost="0.25"))

    assert response.status_code == 200
    assert counts(response) == {"accepted": 0, "duplicates": 1, "conflicts": 0, "rejected": 0}
    assert outcomes(response) == [(0, "e1", "duplicate", "duplicate")]
    assert Event.objects.count() == 1
    assert EventKey.objects.count() == 1


@pytest.mark.parametrize(
    ("first", "again"),
    [("1.50", 1.5), (1.5, "1.500"), ("2", 2.0)],
    ids=["string-vs-number", "number-vs-string", "integer-vs-decimal"],
)
def test_numbers_equal_by_value_make_a_duplicate_not_a_conflict(operator, first, again):
    send(operator, event("e1", cost=first, quantity=first))

    response = send(operator, event("e1", cost=again, quantity=again))

    assert response.status_code == 200
    assert counts(response)["duplicates"] == 1
    assert Event.objects.get().cost == Decimal(str(first))


def test_retry_without_a_timestamp_is_a_duplicate_even_though_the_clock_moved(operator, clock):
    send(operator, event("e1", timestamp=DROP))
    clock.move_to(datetime(2026, 11, 20, 12, 31, tzinfo=UTC))

    response = send(operator, event("e1", timestamp=DROP))

    assert counts(response)["duplicates"] == 1
    assert Event.objects.get().timestamp == RECEIVED


def test_same_id_with_another_payload_is_a_conflict_and_the_first_stays(operator):
    send(operator, event("e1", input_tokens=10))

    response = send(operator, event("e1", input_tokens=11))

    assert response.status_code == 207
    assert counts(response) == {"accepted": 0, "duplicates": 0, "conflicts": 1, "rejected": 0}
    assert outcomes(response) == [(0, "e1", "conflict", "conflict")]
    assert Event.objects.get().input_tokens == 10


def test_same_id_in_two_tenants_is_two_events(operator, make_tenant):
    make_tenant("beta")

    response = send(operator, event("e1"), event("e1", tenant="beta"))

    assert counts(response)["accepted"] == 2
    stored = Event.objects.order_by("tenant__external_id")
    assert [(e.tenant.external_id, e.event_id) for e in stored] == [("acme", "e1"), ("beta", "e1")]


def test_repeats_inside_one_batch_keep_the_first_and_count_the_rest(operator):
    response = send(
        operator,
        event("e1", input_tokens=1),
        event("e1", input_tokens=1),
        event("e1", input_tokens=2),
        event("e2"),
    )

    assert response.status_code == 207
    assert counts(response) == {"accepted": 2, "duplicates": 1, "conflicts": 1, "rejected": 0}
    assert outcomes(response) == [
        (1, "e1", "duplicate", "duplicate"),
        (2, "e1", "conflict", "conflict"),
    ]
    assert Event.objects.get(event_id="e1").input_tokens == 1


# --- rejected: invalid ---------------------------------------------------------------------

INVALID = [
    pytest.param({"id": DROP}, "`id`", id="missing-id"),
    pytest.param({"id": ""}, "id:", id="empty-id"),
    pytest.param({"id": "x" * 129}, "id:", id="id-over-128"),
    pytest.param({"type": DROP}, "`type`", id="missing-type"),
    pytest.param({"type": "bad type!"}, "type:", id="bad-type"),
    pytest.param({"colour": "red"}, "`colour`", id="unknown-field"),
    pytest.param({"cost": "NaN"}, "cost:", id="nan"),
    pytest.param({"credits": "Infinity"}, "credits:", id="infinity"),
    pytest.param({"quantity": "-Infinity"}, "quantity:", id="minus-infinity"),
    pytest.param({"cost": -1}, "cost:", id="negative-number"),
    pytest.param({"input_tokens": "-5"}, "input_tokens:", id="negative-string"),
    pytest.param({"quantity": "1234567890.123456789"}, "quantity:", id="19-significant"),
    pytest.param({"cost": "0.0000000000001"}, "cost:", id="13-decimal-places"),
    pytest.param({"input_tokens": 5.5}, "input_tokens:", id="fractional-tokens"),
    pytest.param({"output_tokens": "5.5"}, "output_tokens:", id="fractional-token-string"),
    pytest.param({"cost": True}, "cost:", id="boolean-number"),
    pytest.param({"status_code": 99}, "status_code:", id="status-99"),
    pytest.param({"status_code": 600}, "status_code:", id="status-600"),
    pytest.param({"attempt": 0}, "attempt:", id="attempt-0"),
    pytest.param({"trace_id": "xyz"}, "trace_id:", id="short-trace-id"),
    pytest.param({"trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736"}, "trace_id:", id="upper-hex"),
    pytest.param({"trace_id": "0" * 32}, "trace_id:", id="zero-trace-id"),
    pytest.param({"span_id": "00f067aa0ba902b7ff"}, "span_id:", id="long-span-id"),
    pytest.param({"cost_currency": "usd"}, "cost_currency:", id="lower-currency"),
    pytest.param({"timestamp": "2026-11-20T12:00:00"}, "timestamp:", id="naive-timestamp"),
    pytest.param({"timestamp": "yesterday"}, "timestamp:", id="not-a-time"),
    pytest.param({"timestamp": "2026-13-20T12:00:00Z"}, "timestamp:", id="month-13"),
    pytest.param({"timestamp": 1763640000}, "timestamp", id="epoch-number"),
    pytest.param({"latency_ms": "1000000000000"}, "latency_ms:", id="latency-beyond-column"),
    pytest.param({"cost": "1E+18"}, "cost:", id="19-integer-digits"),
    pytest.param({"credits": "1" * 29}, "credits:", id="beyond-decimal-precision"),
    pytest.param({"cache_hit": "yes"}, "cache_hit:", id="non-boolean"),
    pytest.param({"properties": {"blob": "x" * 16374}}, "properties:", id="properties-16KB+1"),
    pytest.param({"tenant": DROP}, "tenant:", id="operator-key-without-tenant"),
]


def reported_id(fields):
    """The id a rejection names: the event's own, unless that id is what is wrong."""
    event_id = fields.get("id", "e1")
    return event_id if isinstance(event_id, str) and 1 <= len(event_id) <= 128 else None


@pytest.mark.parametrize(("fields", "named"), INVALID)
def test_invalid_event_is_rejected_with_a_message_naming_the_field(operator, fields, named):
    response = send(operator, event("e1", **fields))

    assert response.status_code == 207
    assert counts(response) == {"accepted": 0, "duplicates": 0, "conflicts": 0, "rejected": 1}
    result = only_result(response)
    assert result["status"] == "rejected"
    assert result["code"] == "invalid"
    assert result["index"] == 0
    assert result["id"] == reported_id(fields)
    assert named in result["message"]
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(
            {"quantity": "123456.789012345678" if settings.USING_POSTGRES else "123.456789012345"},
            id="most-significant-digits-12-places",
        ),
        pytest.param({"properties": {"blob": "x" * 16373}}, id="properties-exactly-16KB"),
        pytest.param({"id": "x" * 128}, id="id-of-128"),
        pytest.param({"status_code": 100, "attempt": 1}, id="lowest-status-and-attempt"),
        pytest.param({"input_tokens": "5.0"}, id="whole-number-with-zero-fraction"),
        pytest.param({"latency_ms": "999999999999.999"}, id="longest-latency"),
        pytest.param({"cost": "1.500000000000000000000"}, id="trailing-zeros-beyond-the-limits"),
    ],
)
def test_values_at_the_limits_are_accepted(operator, fields):
    response = send(operator, event("e1", **fields))

    assert counts(response)["accepted"] == 1, response.json()


def test_one_bad_event_never_sinks_the_batch(operator):
    response = send(
        operator,
        event("good-1"),
        event("bad", input_tokens=5.5),
        event("good-2"),
        event("e-unknown", tenant="nobody"),
    )

    assert response.status_code == 207
    assert counts(response) == {"accepted": 2, "duplicates": 0, "conflicts": 0, "rejected": 2}
    assert outcomes(response) == [
        (1, "bad", "rejected", "invalid"),
        (3, "e-unknown", "rejected", "unknown_tenant"),
    ]
    first = response.json()["results"][0]
    assert set(first) == {"index", "id", "status", "code", "message"}
    assert first["message"].startswith("input_tokens:")
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["good-1", "good-2"]
    batch = IngestBatch.objects.get()
    assert (batch.accepted, batch.rejected) == (2, 2)


# --- rejected: tenants and time ------------------------------------------------------------


def test_unknown_and_closed_tenants_are_rejected_unknown_tenant(operator, make_tenant):
    closed = make_tenant("gone")
    closed.status = "closed"
    closed.save()

    response = send(operator, event("e1", tenant="nobody"), event("e2", tenant="gone"))

    assert [r["code"] for r in response.json()["results"]] == ["unknown_tenant"] * 2
    assert "'nobody'" in response.json()["results"][0]["message"]
    assert not Event.objects.exists()


def test_tenant_bound_key_naming_another_tenant_is_rejected_tenant_mismatch(
    operator, make_tenant, make_key, api
):
    beta = make_tenant("beta")
    client = api(make_key(scopes=["ingest"], tenant=beta))

    response = send(client, event("e1", tenant="acme"), event("e2", tenant=DROP))

    assert response.status_code == 207
    assert counts(response)["accepted"] == 1
    assert outcomes(response) == [(0, "e1", "rejected", "tenant_mismatch")]
    assert [(e.tenant.external_id, e.event_id) for e in Event.objects.all()] == [("beta", "e2")]


@pytest.mark.parametrize(
    ("timestamp", "code"),
    [
        # NOW - 35 days = 2026-10-16T12:30:45.678901; at millisecond precision .678 is older.
        ("2026-10-16T12:30:45.677Z", "timestamp_too_old"),
        ("2026-10-16T12:30:45.679Z", None),
        # NOW + 5 minutes = 12:35:45.678901.
        ("2026-11-20T12:35:45.678Z", None),
        ("2026-11-20T12:35:45.679Z", "timestamp_in_future"),
        ("2026-11-20T14:35:45.679+02:00", "timestamp_in_future"),
    ],
)
def test_late_window_and_future_skew(operator, timestamp, code):
    response = send(operator, event("e1", timestamp=timestamp))

    if code is None:
        assert counts(response)["accepted"] == 1
    else:
        assert only_result(response)["code"] == code
        assert only_result(response)["message"].startswith("timestamp:")
        assert not Event.objects.exists()


def test_backfill_with_an_admin_key_accepts_old_events_and_records_it(operator):
    response = send(operator, event("old", timestamp="2026-01-05T08:00:00Z"), backfill=True)

    assert response.status_code == 200
    assert counts(response)["accepted"] == 1
    stored = Event.objects.get()
    assert stored.timestamp == datetime(2026, 1, 5, 8, tzinfo=UTC)
    assert stored.backfill is True
    assert IngestBatch.objects.get().backfill is True
    future = send(operator, event("e1", timestamp="2026-11-21T00:00:00Z"), backfill=True)
    assert only_result(future)["code"] == "timestamp_in_future"  # backfill lifts only the past


def test_backfill_with_an_ingest_only_key_is_forbidden(operator, make_key, api):
    client = api(make_key(scopes=["ingest"]))

    response = send(client, event("old", timestamp="2026-01-05T08:00:00Z"), backfill=True)

    assert response.status_code == 403
    assert "admin" in response.json()["error"]["message"]
    assert not Event.objects.exists()
    assert not IngestBatch.objects.exists()


# --- timestamps and numbers ----------------------------------------------------------------


def test_timestamp_is_converted_to_utc_and_truncated_to_the_millisecond(operator):
    send(operator, event("e1", timestamp="2026-11-20T10:15:00.123999+02:00"))

    assert Event.objects.get().timestamp == datetime(2026, 11, 20, 8, 15, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sent", "instant"),
    [
        ("2026-11-20T10:15:00.123Z", datetime(2026, 11, 20, 10, 15, 0, 123000, tzinfo=UTC)),
        ("2026-11-20T10:15:00.123+00:00", datetime(2026, 11, 20, 10, 15, 0, 123000, tzinfo=UTC)),
        ("2026-11-20T10:15:00Z", datetime(2026, 11, 20, 10, 15, tzinfo=UTC)),
        ("2026-11-20T11:15:00.5+01:00", datetime(2026, 11, 20, 10, 15, 0, 500000, tzinfo=UTC)),
        ("2026-11-20 10:15:00.123456+00:00", datetime(2026, 11, 20, 10, 15, 0, 123000, tzinfo=UTC)),
    ],
)
def test_every_rfc3339_form_is_stored_as_its_utc_instant(operator, sent, instant):
    response = send(operator, event("e1", timestamp=sent))

    assert counts(response)["accepted"] == 1, response.json()
    assert Event.objects.get().timestamp == instant


def test_one_instant_written_two_ways_is_a_duplicate(operator):
    send(operator, event("e1", timestamp="2026-11-20T10:15:00.120Z"))
    response = send(operator, event("e1", timestamp="2026-11-20T11:15:00.12+01:00"))

    assert counts(response) == {"accepted": 0, "duplicates": 1, "conflicts": 0, "rejected": 0}


def test_whole_numbers_as_strings_store_what_json_integers_store(operator):
    """A batch with a count sent as a string takes the event-by-event path; it stores exactly
    what the one-call path stores for the same numbers as JSON integers."""
    numbers = {"input_tokens": 812, "output_tokens": 96, "status_code": 429, "attempt": 2}
    send(operator, event("ints", **numbers), event("ints-2", bytes_in=10))
    send(operator, event("strings", **{k: str(v) for k, v in numbers.items()}), event("s-2"))

    rows = {
        e.event_id: (e.input_tokens, e.output_tokens, e.status_code, e.attempt)
        for e in Event.objects.filter(event_id__in=["ints", "strings"])
    }
    assert rows == {"ints": (812, 96, 429, 2), "strings": (812, 96, 429, 2)}


def test_numbers_from_json_numbers_or_strings_are_stored_as_exact_decimals(operator):
    raw = (
        '{"events": [{"id": "e1", "tenant": "acme", "type": "llm.call", '
        '"cost": 0.000000000001, "quantity": 123456789.123456, "credits": "0.1", '
        '"latency_ms": "12.3456", "input_tokens": "7", "output_tokens": 8}]}'
    )
    response = operator.post(URL, raw)

    assert counts(response)["accepted"] == 1
    stored = Event.objects.get()
    assert stored.cost == Decimal("0.000000000001")
    assert stored.quantity == Decimal("123456789.123456")
    assert stored.credits == Decimal("0.1")
    assert stored.latency_ms == Decimal("12.346")  # kept to the microsecond, half up
    assert (stored.input_tokens, stored.output_tokens) == (7, 8)
    assert stored.cost_currency == "USD"  # the default currency of a cost


@pytest.mark.skipif(not settings.USING_POSTGRES, reason="PostgreSQL keeps 18 digits")
def test_eighteen_significant_digits_are_stored_exactly(operator):
    send(operator, event("e1", quantity="123456.789012345678", cost="999999999999999999"))

    stored = Event.objects.get()
    assert stored.quantity == Decimal("123456.789012345678")
    assert stored.cost == Decimal("999999999999999999")


@pytest.mark.skipif(settings.USING_POSTGRES, reason="the 15-digit limit is SQLite's")
def test_sqlite_refuses_what_it_would_round_instead_of_storing_it_changed(operator):
    response = send(operator, event("e1", quantity="123456.789012345678"))

    assert response.status_code == 207
    assert response.json()["results"][0]["message"] == (
        "quantity: 123456.789012345678 has more than 15 significant digits"
    )
    assert not Event.objects.exists()


# --- bodies refused whole and keys ---------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b'{"events": []}', id="empty-batch"),
        pytest.param(b'{"events": {}}', id="events-not-a-list"),
        pytest.param(b'{"evts": [{"id": "e1"}]}', id="wrong-key"),
        pytest.param(b'[{"id": "e1", "type": "t"}]', id="list-without-cloudevents-type"),
        pytest.param(b'{"events": [{"cost": NaN}]}', id="nan-literal"),
    ],
)
def test_a_body_that_is_not_a_batch_is_a_400(operator, body):
    response = operator.post(URL, body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_body"
    assert response.json()["error"]["field"] == "events"
    assert not IngestBatch.objects.exists()


def test_more_than_5000_events_is_a_400_and_5000_is_fine(operator):
    too_many = json.dumps({"events": [event(f"e{i}") for i in range(5001)]})

    response = operator.post(URL, too_many)

    assert response.status_code == 400
    assert "5001" in response.json()["error"]["message"]
    assert not Event.objects.exists()
    assert counts(send(operator, *(event(f"e{i}") for i in range(5000))))["accepted"] == 5000


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer pc_00000000_nope", "Bearer", "Token abc", "Bearer a b"],
)
def test_missing_or_wrong_key_is_a_401(operator, client, authorization):
    headers = {"Authorization": authorization} if authorization else {}

    response = client.post(
        URL, json.dumps({"events": [event()]}), content_type="application/json", headers=headers
    )

    assert response.status_code == 401
    assert not Event.objects.exists()


def test_revoked_key_is_a_401(operator, api):
    issued = api_key_create(name="gateway", scopes=["ingest"])
    client = api(issued.plaintext)
    assert send(client, event("e1")).status_code == 200
    api_key_revoke(prefix=issued.api_key.prefix)

    response = send(client, event("e2"))

    assert response.status_code == 401
    assert list(Event.objects.values_list("event_id", flat=True)) == ["e1"]


def test_read_only_key_is_a_403(operator, make_key, api):
    response = send(api(make_key(scopes=["read"])), event("e1"))

    assert response.status_code == 403
    assert not Event.objects.exists()
