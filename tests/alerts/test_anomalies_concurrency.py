"""Detection running concurrently (a slow run overlapping the next one) stores each anomaly
once and publishes it once. PostgreSQL only: SQLite serialises writers."""

import pytest

from apps.alerts.models import Anomaly
from apps.alerts.services import anomalies
from apps.core.outbox import outbox_publish
from tests.alerts.test_anomalies import NOW, at_h, prices, traffic
from tests.concurrency import run_together

__all__ = ["NOW", "prices"]
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_runs_store_and_publish_once(prices, make_tenant, clock, monkeypatch):
    acme = make_tenant("acme")
    traffic(acme, plant=at_h(lambda s: s["chat"].update(model="gpt-big")))
    # committed, the outbox is dispatched at once: count what the runs publish instead
    published: list[str] = []

    def publish(**kwargs):
        published.append(kwargs["data"]["id"])
        outbox_publish(**kwargs)

    monkeypatch.setattr(anomalies, "outbox_publish", publish)
    results = run_together(*[lambda: anomalies.anomalies_detect(as_of=NOW)] * 3)
    # every run answers with the three anomalies (tenant, feature chat, endpoint /v1/chat)
    assert [len(r) for r in results] == [3, 3, 3]
    assert Anomaly.objects.count() == 3
    assert sorted(published) == sorted(str(i) for i in Anomaly.objects.values_list("id", flat=True))
