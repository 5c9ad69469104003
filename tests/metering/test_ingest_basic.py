from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from apps.metering.models import Event, UsageRollup
from apps.tenants.models import Tenant

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
pytestmark = pytest.mark.django_db(transaction=True)


@time_machine.travel(NOW, tick=False)
def test_accepts_a_batch_stores_it_and_rolls_it_up(make_tenant, make_key, api):
    make_tenant("acme")
    client = api(make_key())
    events = [
        {
            "id": f"e{i}",
            "tenant": "acme",
            "type": "llm.call",
            "timestamp": "2026-11-20T10:15:00.123456Z",
            "model": "gpt-4o",
            "input_tokens": 100 + i,
            "output_tokens": "20",
            "cost": "0.000002",
        }
        for i in range(3)
    ]
    response = client.post("/api/v1/events", {"events": events})
    assert response.status_code == 200, response.content
    assert response.json() == {
        "accepted": 3,
        "duplicates": 0,
        "conflicts": 0,
        "rejected": 0,
        "results": [],
    }
    stored = Event.objects.get(event_id="e1")
    assert stored.timestamp == datetime(2026, 11, 20, 10, 15, 0, 123000, tzinfo=UTC)
    assert stored.cost == Decimal("0.000002")
    rollup = UsageRollup.objects.get()
    assert rollup.events == 3
    assert rollup.input_tokens == 100 + 101 + 102
    assert rollup.output_tokens == 60
    assert rollup.cost == Decimal("0.000006")
    assert Tenant.objects.get().first_call_at == stored.timestamp
