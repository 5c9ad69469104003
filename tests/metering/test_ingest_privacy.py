"""Privacy at ingestion: ``user`` and denied properties are pseudonymized or dropped before
anything is stored, deterministically, so resent events stay duplicates and unique counts hold.

Expected pseudonyms are computed here with the standard library's HMAC, not by Percall."""

import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from apps.metering.models import Event, EventKey, Meter
from apps.metering.selectors import meter_quantities
from apps.metering.services.privacy import privacy_policy

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
URL = "/api/v1/events"
KEY = "test-privacy-key"
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


def anon(value: bytes, key: bytes = KEY.encode()) -> str:
    return "anon_" + hmac.new(key, value, hashlib.sha256).hexdigest()[:24]


def event(event_id="e1", **fields):
    return {
        "id": event_id,
        "tenant": "acme",
        "type": "api.call",
        "timestamp": "2026-11-20T12:00:00Z",
    } | fields


@pytest.fixture
def operator(make_tenant, make_key, api, settings):
    settings.PERCALL_PRIVACY_HASH_KEY = KEY
    make_tenant("acme")
    return api(make_key())


def send(client, *events):
    return client.post(URL, {"events": list(events)})


def stored_text() -> str:
    """Every column of every stored event and key, as one text, to look for raw values in."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM metering_event")
        rows = cursor.fetchall()
        cursor.execute("SELECT * FROM metering_event_key")
        rows += cursor.fetchall()
    return repr(rows)


def test_user_and_default_denied_properties_are_hashed_and_the_raw_values_stored_nowhere(
    operator,
):
    response = send(
        operator,
        event(
            user="alice",
            properties={
                "Email": "alice@example.com",  # any case
                "user.email": "alice@example.com",  # a dotted OpenTelemetry name, literally
                "client.address": "203.0.113.7",
                "phone": 5551234,  # not a string: hashed as its JSON
                "ip_address": None,  # null says nothing: kept
                "plan": "pro",
                "user": {"email": "nested@example.com"},  # only top-level names are matched
            },
        ),
    )

    assert response.json()["accepted"] == 1
    stored = Event.objects.get()
    assert stored.user == anon(b"alice")
    assert stored.properties == {
        "Email": anon(b"alice@example.com"),
        "user.email": anon(b"alice@example.com"),
        "client.address": anon(b"203.0.113.7"),
        "phone": anon(b"5551234"),
        "ip_address": None,
        "plan": "pro",
        "user": {"email": "nested@example.com"},
    }
    text = stored_text()
    assert "alice" not in text and "203.0.113.7" not in text and "5551234" not in text


def test_the_default_key_is_derived_from_secret_key(operator, settings):
    settings.PERCALL_PRIVACY_HASH_KEY = ""
    settings.SECRET_KEY = "a-secret-key-for-this-test"
    derived = hmac.new(
        b"a-secret-key-for-this-test", b"percall.metering.privacy-pseudonym", hashlib.sha256
    ).digest()

    send(operator, event(user="alice"))

    assert Event.objects.get().user == anon(b"alice", key=derived)


def test_a_resent_identical_event_is_a_duplicate_and_a_changed_email_a_conflict(operator):
    first = event("e1", user="alice", properties={"email": "alice@example.com"})
    assert send(operator, first).json()["accepted"] == 1

    again = send(operator, first).json()
    changed = send(
        operator, event("e1", user="alice", properties={"email": "bob@example.com"})
    ).json()

    assert (again["accepted"], again["duplicates"], again["conflicts"]) == (0, 1, 0)
    assert (changed["duplicates"], changed["conflicts"]) == (0, 1)
    assert Event.objects.count() == EventKey.objects.count() == 1


def test_the_same_event_twice_in_one_batch_is_a_duplicate(operator):
    one = event("e1", user="alice", properties={"email": "alice@example.com"})

    body = send(operator, one, one).json()

    assert (body["accepted"], body["duplicates"], body["conflicts"]) == (1, 1, 0)


def test_user_drop_and_keep(operator, settings):
    settings.PERCALL_PRIVACY_USER = "drop"
    send(operator, event("e1", user="alice"))
    settings.PERCALL_PRIVACY_USER = "keep"
    send(operator, event("e2", user="alice"))

    users = dict(Event.objects.values_list("event_id", "user"))
    assert users == {"e1": None, "e2": "alice"}


def test_a_configured_deny_list_with_drop_removes_the_properties(operator, settings):
    settings.PERCALL_PRIVACY_DENY_PROPERTIES = ["customer_ref", "enduser.id"]
    settings.PERCALL_PRIVACY_DENY_ACTION = "drop"

    send(
        operator,
        event(properties={"Customer_Ref": "r-9", "enduser.id": "u-1", "email": "kept@x.io"}),
    )

    # email is no longer on the (replaced) list, so it is kept as sent
    assert Event.objects.get().properties == {"email": "kept@x.io"}


def test_an_empty_deny_list_stores_every_property_as_sent(operator, settings):
    settings.PERCALL_PRIVACY_DENY_PROPERTIES = []

    send(operator, event(properties={"email": "alice@example.com"}))

    assert Event.objects.get().properties == {"email": "alice@example.com"}


def test_rotating_the_key_changes_the_pseudonym(operator, settings):
    send(operator, event("e1", user="alice"))
    settings.PERCALL_PRIVACY_HASH_KEY = "another-key"
    send(operator, event("e2", user="alice"))

    users = dict(Event.objects.values_list("event_id", "user"))
    assert users == {"e1": anon(b"alice"), "e2": anon(b"alice", key=b"another-key")}


def test_cloudevents_data_is_scrubbed_too(operator):
    cloud = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "//gateway.example",
        "type": "api.call",
        "subject": "acme",
        "time": "2026-11-20T12:00:00Z",
        "data": {"user": "alice", "email": "alice@example.com", "customer_ref": "r-9"},
    }

    operator.post(URL, json.dumps(cloud), content_type="application/cloudevents+json")

    stored = Event.objects.get()
    assert stored.user == anon(b"alice")
    assert stored.properties == {
        "email": anon(b"alice@example.com"),
        "customer_ref": "r-9",
        "cloudevents.source": "//gateway.example",
    }


def test_unique_counts_and_group_bys_over_pseudonyms_equal_those_over_raw_values(operator):
    # given alice twice and bob once, as the user attribute and as a denied user_id property
    send(
        operator,
        *(
            event(f"e{n}", user=name, properties={"user_id": name})
            for n, name in enumerate(["alice", "bob", "alice"])
        ),
    )
    tenant_id = Event.objects.values_list("tenant_id", flat=True).first()
    start, end = datetime(2026, 11, 20, 11, tzinfo=UTC), datetime(2026, 11, 20, 13, tzinfo=UTC)

    def quantity(**meter):
        m = Meter.objects.create(code=f"m-{Meter.objects.count()}", event_type="api.call", **meter)
        return meter_quantities(meter=m, tenant_id=tenant_id, start=start, end=end)

    # then 2 unique users either way, and a count per pseudonym
    assert quantity(aggregation="unique_count", field="user") == {(): Decimal(2)}
    assert quantity(aggregation="unique_count", field="properties.user_id") == {(): Decimal(2)}
    assert quantity(aggregation="count", group_by=["user"]) == {
        (anon(b"alice"),): Decimal(2),
        (anon(b"bob"),): Decimal(1),
    }


@pytest.mark.parametrize(
    ("setting", "value"),
    [("PERCALL_PRIVACY_USER", "hide"), ("PERCALL_PRIVACY_DENY_ACTION", "keep")],
)
def test_an_unknown_action_is_refused_naming_the_setting(settings, setting, value):
    setattr(settings, setting, value)

    with pytest.raises(ImproperlyConfigured, match=f"{setting}: '{value}' is not one of"):
        privacy_policy()


def test_the_system_check_reports_a_bad_privacy_setting(settings):
    from apps.metering.apps import privacy_settings_check

    settings.PERCALL_PRIVACY_USER = "hide"

    (error,) = privacy_settings_check()
    assert error.id == "metering.E001" and "PERCALL_PRIVACY_USER" in error.msg
