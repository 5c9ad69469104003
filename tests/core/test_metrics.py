from datetime import UTC, datetime, timedelta

import pytest
from celery import current_app
from django.core.cache import cache
from prometheus_client.parser import text_string_to_metric_families

from apps.alerts.models import WebhookDelivery, WebhookMessage
from apps.alerts.services.webhooks import webhook_endpoint_create
from apps.metering.models import IngestBatch, RollupPending
from apps.tenants.models import Tenant

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
pytestmark = pytest.mark.django_db


def _samples(response) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    text = response.content.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def _ingest_three_good_and_two_bad(make_tenant, make_key, api) -> None:
    make_tenant("acme")
    good = [
        {"id": f"e{i}", "tenant": "acme", "type": "llm.call", "timestamp": "2026-11-20T10:15:00Z"}
        for i in range(3)
    ]
    bad = [
        {"id": "x1", "tenant": "nobody", "type": "llm.call", "timestamp": "2026-11-20T10:15:00Z"},
        {"id": "x2", "tenant": "acme", "type": "llm.call", "timestamp": "2020-01-01T00:00:00Z"},
    ]
    response = api(make_key()).post("/api/v1/events", {"events": good + bad})
    assert response.json()["accepted"] == 3 and response.json()["rejected"] == 2


def test_metrics_report_ingest_outcomes_and_rollup_lag(clock, make_tenant, make_key, api, client):
    _ingest_three_good_and_two_bad(make_tenant, make_key, api)
    tenant_id = Tenant.objects.get().id
    RollupPending.objects.all().delete()  # only the fixture's pending hour below counts
    RollupPending.objects.create(
        tenant_id=tenant_id, hour=NOW.replace(minute=0), marked_at=NOW - timedelta(seconds=90)
    )
    RollupPending.objects.create(
        tenant_id=tenant_id, hour=NOW.replace(minute=0), marked_at=NOW - timedelta(seconds=30)
    )

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = _samples(response)
    assert samples[("percall_ingest_events_total", (("outcome", "accepted"),))] == 3
    assert samples[("percall_ingest_events_total", (("outcome", "rejected"),))] == 2
    assert samples[("percall_ingest_events_total", (("outcome", "duplicate"),))] == 0
    assert samples[("percall_ingest_batches_total", ())] == 1
    assert samples[("percall_ingest_rejected_total", (("code", "unknown_tenant"),))] == 1
    assert samples[("percall_ingest_rejected_total", (("code", "timestamp_too_old"),))] == 1
    assert samples[("percall_ingest_rejected_total", (("code", "tenant_mismatch"),))] == 0
    # The oldest pending row was marked 90 s before the pinned clock.
    assert samples[("percall_rollup_lag_seconds", ())] == 90
    assert samples[("percall_rollup_pending", ())] == 2
    assert samples[("percall_metrics_scrape_error", (("family", "ingest"),))] == 0


def test_rollup_lag_is_zero_with_nothing_pending(clock, client):
    RollupPending.objects.all().delete()
    samples = _samples(client.get("/metrics"))
    assert samples[("percall_rollup_lag_seconds", ())] == 0
    assert samples[("percall_ingest_events_total", (("outcome", "accepted"),))] == 0


def test_failed_tasks_are_counted_by_name_across_calls(client):
    @current_app.task(name="tests.core.always_fails")
    def always_fails() -> None:
        raise RuntimeError("boom")

    for _ in range(2):
        # apply() runs it here with the worker's signals; the failure is in the result.
        assert always_fails.apply(throw=False).failed()

    samples = _samples(client.get("/metrics"))
    key = ("percall_celery_task_failures_total", (("task", "tests.core.always_fails"),))
    assert samples[key] == 2
    # Tasks that never failed are listed at 0, so a rate() has a series from the start.
    assert (
        samples[("percall_celery_task_failures_total", (("task", "metering.rollup_pending"),))] == 0
    )


def test_webhook_failures_and_pending_deliveries(make_tenant, client):
    tenant = make_tenant("acme")
    endpoint = webhook_endpoint_create(
        url="https://hooks.example/in", tenant_id=tenant.id, event_types=[]
    )
    statuses = [("failed", 8), ("failed", 8), ("pending", 2), ("pending", 0), ("succeeded", 1)]
    for n, (status, attempts) in enumerate(statuses):
        message = WebhookMessage.objects.create(
            msg_id=f"msg_{n}",
            event_type="invoice.finalized",
            tenant=tenant,
            body="{}",
            outbox_event_id=90_000 + n,
        )
        WebhookDelivery.objects.create(
            endpoint=endpoint, message=message, status=status, attempts=attempts
        )

    samples = _samples(client.get("/metrics"))

    assert samples[("percall_webhook_deliveries_failed_total", ())] == 2
    assert samples[("percall_webhook_deliveries_pending", ())] == 2
    assert samples[("percall_webhook_deliveries_retrying", ())] == 1  # pending with a try behind


def test_a_family_that_cannot_be_read_is_reported_and_the_rest_still_arrive(client, monkeypatch):
    from apps.core import metrics

    def broken():
        raise RuntimeError("relation does not exist")

    monkeypatch.setitem(metrics.FAMILIES, "webhooks", broken)
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = _samples(response)
    assert samples[("percall_metrics_scrape_error", (("family", "webhooks"),))] == 1
    assert ("percall_rollup_lag_seconds", ()) in samples


def test_metrics_token_guards_the_scrape_when_set(client, settings):
    settings.PERCALL_METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"].startswith("Bearer")
    right = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert right.status_code == 200
    assert b"percall_rollup_lag_seconds" in right.content


def test_metrics_is_open_without_a_token(client, settings):
    settings.PERCALL_METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200


def test_ingest_totals_fold_settled_batches_into_a_checkpoint(
    clock, make_tenant, make_key, api, client
):
    _ingest_three_good_and_two_bad(make_tenant, make_key, api)
    clock.shift(timedelta(minutes=11))  # the batch is now settled (older than 10 minutes)
    first = _samples(client.get("/metrics"))
    assert first[("percall_ingest_events_total", (("outcome", "accepted"),))] == 3
    # The settled batch is in the checkpoint now: later scrapes no longer read its row, as
    # removing it shows; a newer batch adds to the total.
    IngestBatch.objects.all().delete()
    good = {"id": "late1", "tenant": "acme", "type": "llm.call", "timestamp": NOW.isoformat()}
    api(make_key()).post("/api/v1/events", {"events": [good]})
    second = _samples(client.get("/metrics"))
    assert second[("percall_ingest_events_total", (("outcome", "accepted"),))] == 3 + 1
    assert second[("percall_ingest_events_total", (("outcome", "rejected"),))] == 2
    assert second[("percall_ingest_batches_total", ())] == 1 + 1
    # the rejections by code were folded into the checkpoint with the rest
    assert second[("percall_ingest_rejected_total", (("code", "unknown_tenant"),))] == 1
    assert second[("percall_ingest_rejected_total", (("code", "timestamp_too_old"),))] == 1


def test_rejections_are_counted_by_code_across_batches_and_the_checkpoint(
    clock, make_tenant, make_key, api, client
):
    # given one batch with 2 unknown tenants, 1 invalid and 1 in the future, settled
    acme = make_tenant("acme")
    post = api(make_key()).post
    at = "2026-11-20T10:15:00Z"

    def ev(event_id, **fields):
        return {"id": event_id, "tenant": "acme", "type": "api.call", "timestamp": at} | fields

    first = [
        ev("a", tenant="nobody"),
        ev("b", tenant="nobody"),
        ev("c", input_tokens=-1),
        ev("d", timestamp="2026-11-21T00:00:00Z"),
        ev("ok1"),
    ]
    assert post("/api/v1/events", {"events": first}).json()["rejected"] == 4
    clock.shift(timedelta(minutes=11))
    _samples(client.get("/metrics"))  # folds the first batch into the checkpoint
    # when a newer batch brings 1 more unknown tenant and a tenant-bound key 1 mismatch
    assert post("/api/v1/events", {"events": [ev("e", tenant="nobody")]}).json()["rejected"]
    bound = api(make_key(tenant=acme))
    assert bound.post("/api/v1/events", {"events": [ev("f", tenant="other")]}).json()["rejected"]

    samples = _samples(client.get("/metrics"))

    def rejected(code):
        return samples[("percall_ingest_rejected_total", (("code", code),))]

    assert rejected("unknown_tenant") == 2 + 1
    assert rejected("invalid") == 1
    assert rejected("timestamp_in_future") == 1
    assert rejected("tenant_mismatch") == 1
    assert rejected("timestamp_too_old") == 0
    assert samples[("percall_ingest_events_total", (("outcome", "rejected"),))] == 4 + 1 + 1
    assert IngestBatch.objects.order_by("id").first().rejected_codes == {
        "invalid": 1,
        "timestamp_in_future": 1,
        "unknown_tenant": 2,
    }


def test_a_scrape_reads_each_family_in_at_most_three_queries(client, django_assert_max_num_queries):
    # ingest 3 (settled id, sums, rejections by code), rollups 1, webhooks 1; task failures
    # read the cache.
    with django_assert_max_num_queries(5):
        assert client.get("/metrics").status_code == 200
