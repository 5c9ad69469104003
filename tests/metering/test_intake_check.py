"""The 3-way intake check: ingest tallies = raw events = rollups, per tenant and hour, through
the selector and through GET /api/v1/usage/check."""

from datetime import UTC, datetime

import pytest
from django.db import connection

from apps.metering.models import UsageRollup
from apps.metering.selectors import usage_intake_check
from apps.metering.services.rollup import rollup_pending_run, rollup_rebuild

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
pytestmark = pytest.mark.usefixtures("clock")
H10 = datetime(2026, 11, 20, 10, tzinfo=UTC)
URL = "/api/v1/usage/check"


@pytest.fixture
def rollup_deferred(monkeypatch):
    """Ingestion queues its hours but does not kick the rollup job, like a busy broker."""
    monkeypatch.setattr("apps.metering.services.ingest.job_enqueue_on_commit", lambda **kw: None)


def three_calls(tenant: str = "acme") -> dict:
    """Three calls in hour 10 (tokens 10+1, 20+2, 30+3) and one in hour 11."""
    at = ("2026-11-20T10:00:00Z", "2026-11-20T10:30:00Z", "2026-11-20T10:59:59.999Z")
    events = [
        {
            "id": f"{tenant}-{n}",
            "tenant": tenant,
            "type": "llm.call",
            "timestamp": ts,
            "input_tokens": 10 * (n + 1),
            "output_tokens": n + 1,
        }
        for n, ts in enumerate(at)
    ]
    next_hour = {"id": f"{tenant}-next", "timestamp": "2026-11-20T11:00:00Z", "input_tokens": 500}
    events.append(next_hour | {"tenant": tenant, "type": "llm.call"})
    return {"events": events}


def send(api, key, body) -> None:
    response = api(key).post("/api/v1/events", body)
    assert response.status_code == 200, response.content


@pytest.mark.django_db(transaction=True)
def test_balanced_once_the_ingest_job_has_rolled_up(make_tenant, make_key, api):
    # given three events sent through the API; ingestion's own job rolls them up on commit
    acme = make_tenant("acme")
    key = make_key()
    send(api, key, three_calls())

    # when the hour is checked through the selector and the API
    check = usage_intake_check(tenant_id=acme.id, hour=H10)
    response = api(key).get(URL, {"tenant": "acme", "hour": "2026-11-20T10:00:00Z"})

    # then all three sides say 3 events and 66 tokens, with nothing pending
    assert (check.ingested, check.stored, check.rolled_up) == (3, 3, 3)
    assert check.stored_tokens == check.rolled_up_tokens == 10 + 1 + 20 + 2 + 30 + 3
    assert check.balanced and not check.pending
    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "tenant": "acme",
        "hour": "2026-11-20T10:00:00Z",
        "ingested": 3,
        "stored": 3,
        "rolled_up": 3,
        "pending": False,
        "purged": False,
        "balanced": True,
    }


@pytest.mark.django_db(transaction=True)
def test_pending_and_unbalanced_until_the_deferred_rollup_runs(
    make_tenant, make_key, api, rollup_deferred
):
    # given events ingested while the rollup job is held back
    acme = make_tenant("acme")
    key = make_key()
    send(api, key, three_calls())

    # then the hour is pending: ingested and stored, not yet rolled up
    before = usage_intake_check(tenant_id=acme.id, hour=H10)
    assert (before.ingested, before.stored, before.rolled_up) == (3, 3, 0)
    assert before.pending and not before.balanced
    body = api(key).get(URL, {"tenant": "acme", "hour": "2026-11-20T10:00:00Z"}).json()
    assert (body["pending"], body["balanced"], body["rolled_up"]) == (True, False, 0)

    # when the rollup finally runs
    assert rollup_pending_run() == 2  # hours 10 and 11

    # then it balances
    after = usage_intake_check(tenant_id=acme.id, hour=H10)
    assert (after.ingested, after.stored, after.rolled_up) == (3, 3, 3)
    assert after.balanced and not after.pending


@pytest.mark.django_db(transaction=True)
def test_a_resent_batch_is_not_counted_twice(make_tenant, make_key, api):
    # given the same batch sent twice (the second answered as duplicates)
    acme = make_tenant("acme")
    key = make_key()
    send(api, key, three_calls())
    send(api, key, three_calls())

    # then intake still tallies each event once and the hour balances
    check = usage_intake_check(tenant_id=acme.id, hour=H10)
    assert (check.ingested, check.stored, check.rolled_up) == (3, 3, 3)
    assert check.balanced


@pytest.mark.django_db(transaction=True)
def test_an_event_deleted_behind_the_stores_back_unbalances_the_hour(make_tenant, make_key, api):
    # given a balanced hour
    acme = make_tenant("acme")
    key = make_key()
    send(api, key, three_calls())
    assert usage_intake_check(tenant_id=acme.id, hour=H10).balanced

    # when one raw event (20 + 2 tokens) disappears without the store knowing
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM metering_event WHERE event_id = %s", ["acme-1"])
        assert cursor.rowcount == 1

    # then the check sees intake and rollup at 3 but the store at 2
    check = usage_intake_check(tenant_id=acme.id, hour=H10)
    assert (check.ingested, check.stored, check.rolled_up) == (3, 2, 3)
    assert (check.stored_tokens, check.rolled_up_tokens) == (44, 66)
    assert not check.balanced and not check.pending
    body = api(key).get(URL, {"tenant": "acme", "hour": "2026-11-20T10:00:00Z"}).json()
    assert (body["stored"], body["balanced"]) == (2, False)
    # and the next hour is untouched
    assert usage_intake_check(
        tenant_id=acme.id, hour=datetime(2026, 11, 20, 11, tzinfo=UTC)
    ).balanced


@pytest.mark.django_db(transaction=True)
def test_a_lost_rollup_is_seen_and_a_rebuild_repairs_it(make_tenant, make_key, api):
    # given a balanced hour whose rollup rows are then lost
    acme = make_tenant("acme")
    send(api, make_key(), three_calls())
    UsageRollup.objects.filter(tenant=acme, hour=H10).delete()

    # then the check sees nothing rolled up, with nothing queued to fix it
    lost = usage_intake_check(tenant_id=acme.id, hour=H10)
    assert (lost.ingested, lost.stored, lost.rolled_up) == (3, 3, 0)
    assert not lost.balanced and not lost.pending

    # when the hour is rebuilt (its job runs on commit)
    rollup_rebuild(tenant_id=acme.id, start=H10, end=datetime(2026, 11, 20, 11, tzinfo=UTC))

    # then it balances again
    assert usage_intake_check(tenant_id=acme.id, hour=H10).balanced


@pytest.mark.django_db
def test_any_time_in_the_hour_checks_that_utc_hour(make_tenant, make_key, api):
    # given three events in hour 10:00Z, rolled up
    acme = make_tenant("acme")
    key = make_key()
    send(api, key, three_calls())
    rollup_pending_run()

    # when the hour is given as 15:45 in India (+05:30), that is 10:15Z
    check = usage_intake_check(
        tenant_id=acme.id, hour=datetime.fromisoformat("2026-11-20T15:45+05:30")
    )
    response = api(key).get(URL, {"tenant": "acme", "hour": "2026-11-20T15:45:00+05:30"})

    # then the UTC hour 10:00Z is checked, not 15:00+05:30 (09:30Z)
    assert check.hour == H10
    assert (check.ingested, check.stored, check.rolled_up) == (3, 3, 3)
    assert response.status_code == 200, response.content
    assert response.json() == {
        "tenant": "acme",
        "hour": "2026-11-20T10:00:00Z",
        "ingested": 3,
        "stored": 3,
        "rolled_up": 3,
        "pending": False,
        "purged": False,
        "balanced": True,
    }


@pytest.mark.django_db
def test_an_hour_without_traffic_is_all_zero_and_balanced(make_tenant):
    acme = make_tenant("acme")

    check = usage_intake_check(tenant_id=acme.id, hour=H10)

    assert (check.ingested, check.stored, check.rolled_up, check.stored_tokens) == (0, 0, 0, 0)
    assert check.balanced and not check.pending


@pytest.mark.django_db
def test_the_check_is_tenant_scoped_and_names_bad_input(make_tenant, make_key, api):
    acme = make_tenant("acme")
    make_tenant("globex")
    tenant_key = make_key(scopes=("read",), tenant=acme)

    foreign = api(tenant_key).get(URL, {"tenant": "globex", "hour": "2026-11-20T10:00:00Z"})
    own = api(tenant_key).get(URL, {"hour": "2026-11-20T10:00:00Z"})
    missing = api(make_key()).get(URL, {"tenant": "acme"})
    naive = api(make_key()).get(URL, {"tenant": "acme", "hour": "2026-11-20T10:00:00"})

    assert foreign.status_code == 404
    assert own.status_code == 200 and own.json()["tenant"] == "acme"
    assert missing.status_code == naive.status_code == 400
    assert missing.json()["error"]["field"] == naive.json()["error"]["field"] == "hour"
