"""The per-tenant ingestion rate (PERCALL_INGEST_EVENTS_PER_MINUTE): counted in events, a batch
at a time; a batch that would go over is refused whole with 429 and Retry-After and stores
nothing; the rate is off at 0, the default."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache

from apps.metering.models import Event, IngestBatch

# 30 s into a minute: the window [12:30:00, 12:31:00) has 30 s left.
NOW = datetime(2026, 11, 20, 12, 30, 30, tzinfo=UTC)
URL = "/api/v1/events"
CE_BATCH = "application/cloudevents-batch+json"
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture(autouse=True)
def rate(settings):
    cache.clear()
    settings.PERCALL_INGEST_EVENTS_PER_MINUTE = 10
    yield
    cache.clear()


@pytest.fixture
def operator(make_tenant, make_key, api):
    make_tenant("acme")
    make_tenant("globex")
    return api(make_key())


def batch(count, tenant="acme", start=0):
    return {
        "events": [
            {"id": f"{tenant}-{i}", "tenant": tenant, "type": "api.call"}
            for i in range(start, start + count)
        ]
    }


def stored(tenant):
    return Event.objects.filter(tenant__external_id=tenant).count()


def test_events_up_to_the_rate_are_stored(operator):
    assert operator.post(URL, batch(6)).status_code == 200
    assert operator.post(URL, batch(4, start=6)).status_code == 200  # 6 + 4 = 10, the rate

    assert stored("acme") == 10


def test_a_batch_that_would_go_over_is_refused_whole_and_stores_nothing(operator):
    operator.post(URL, batch(6))
    batches_before = IngestBatch.objects.count()

    refused = operator.post(URL, batch(5, start=6))  # 6 + 5 = 11 > 10

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "30"  # 12:31:00 - 12:30:30
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert "10 events a minute" in error["message"]
    assert stored("acme") == 6  # none of the five
    assert IngestBatch.objects.count() == batches_before
    # The refused five were not charged: four more still fit (6 + 4 = 10).
    assert operator.post(URL, batch(4, start=6)).status_code == 200


def test_the_rate_resets_in_the_next_minute(operator, clock):
    operator.post(URL, batch(10))
    assert operator.post(URL, batch(1, start=10)).status_code == 429

    clock.shift(timedelta(seconds=30))  # 12:31:00

    assert operator.post(URL, batch(10, start=10)).status_code == 200
    assert stored("acme") == 20


def test_each_tenant_has_its_own_rate(operator):
    operator.post(URL, batch(10, "acme"))

    assert operator.post(URL, batch(10, "globex")).status_code == 200
    assert stored("globex") == 10


def test_a_mixed_batch_over_one_tenants_rate_stores_nothing_for_either(operator):
    operator.post(URL, batch(8, "acme"))
    mixed = {"events": batch(3, "acme", start=8)["events"] + batch(2, "globex")["events"]}

    assert operator.post(URL, mixed).status_code == 429  # acme: 8 + 3 > 10

    assert (stored("acme"), stored("globex")) == (8, 0)
    # globex's two were refunded with the batch: its whole 10 remain.
    assert operator.post(URL, batch(10, "globex")).status_code == 200


def test_a_tenant_bound_key_counts_every_event_against_its_tenant(make_tenant, make_key, api):
    acme = make_tenant("acme")
    bound = api(make_key(scopes=("ingest",), tenant=acme))
    untagged = {"events": [{"id": f"u{i}", "type": "api.call"} for i in range(11)]}

    response = bound.post(URL, untagged)

    # 11 events is more than the whole rate: split it (413), never retry it as it is.
    assert response.status_code == 413
    assert response.json()["error"]["field"] == "events"
    assert stored("acme") == 0


def test_cloudevents_batches_count_by_subject(operator):
    events = [
        {"specversion": "1.0", "id": f"ce-{i}", "source": "//gw", "type": "llm.call"}
        | {"subject": "acme"}
        for i in range(11)
    ]
    body = json.dumps(events)

    response = operator.post(URL, body, content_type=CE_BATCH)

    assert response.status_code == 413
    assert stored("acme") == 0


def test_rejected_events_count_too(operator):
    bad = {"events": [{"id": f"b{i}", "tenant": "acme"} for i in range(10)]}  # no type
    assert operator.post(URL, bad).status_code == 207

    assert operator.post(URL, batch(1)).status_code == 429


def test_zero_turns_the_rate_off(operator, settings):
    settings.PERCALL_INGEST_EVENTS_PER_MINUTE = 0

    for start in range(0, 50, 10):
        assert operator.post(URL, batch(10, start=start)).status_code == 200
    assert stored("acme") == 50
