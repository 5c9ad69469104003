"""Meter rollups: the hourly rows every kind of meter gets with the usage rollup, whether it is
answered from the usage rows (counts, sums and max of well-known numbers) or from raw events
(unique counts, properties, latest), and a one-meter rebuild that gives the same rows."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from apps.metering.models import Meter, MeterRollup
from apps.metering.selectors import meter_quantities
from apps.metering.services.meters import MeterSpec, meter_upsert
from apps.metering.services.rollup import meter_rollups_rebuild, rollup_pending_run
from tests.metering.ingesting import ingest_events
from tests.metering.ingesting import llm_event as llm

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
H10 = datetime(2026, 11, 20, 10, tzinfo=UTC)
H11 = datetime(2026, 11, 20, 11, tzinfo=UTC)

METERS = {
    "calls": MeterSpec(code="calls", event_type="api.call", aggregation="count"),
    "chat_by_model": MeterSpec(
        code="chat_by_model",
        event_type="api.call",
        aggregation="count",
        filters=(("feature", "chat"),),
        group_by=("model",),
    ),
    "tokens_by_model": MeterSpec(
        code="tokens_by_model",
        event_type="llm.call",
        aggregation="sum",
        field="input_tokens",
        group_by=("model",),
    ),
    "slowest": MeterSpec(
        code="slowest", event_type="api.call", aggregation="max", field="latency_ms"
    ),
    "users": MeterSpec(
        code="users", event_type="api.call", aggregation="unique_count", field="user"
    ),
    "pages": MeterSpec(
        code="pages", event_type="api.call", aggregation="sum", field="properties.pages"
    ),
    "seats": MeterSpec(
        code="seats", event_type="api.call", aggregation="latest", field="properties.seats"
    ),
}


def call(event_id: str, at: str, tenant: str = "acme", **attributes) -> dict:
    return {"id": event_id, "tenant": tenant, "type": "api.call", "timestamp": at, **attributes}


@pytest.fixture
def rolled_up(make_tenant):
    """Two tenants' events in two hours, every meter defined, rolled up once."""
    acme, globex = make_tenant("acme"), make_tenant("globex")
    meters = {code: meter_upsert(spec=spec)[0] for code, spec in METERS.items()}
    ingest_events(
        call("a1", "2026-11-20T10:05:00Z", feature="chat", model="m1", user="u1",
             latency_ms="120", properties={"pages": 2, "seats": 5}),
        call("a2", "2026-11-20T10:20:00Z", feature="chat", model="m2", user="u2",
             latency_ms="300.5", properties={"pages": 3}),
        call("a3", "2026-11-20T10:40:00Z", feature="search", user="u1", latency_ms="80",
             properties={"seats": 7}),
        llm("l1", "2026-11-20T10:10:00Z", "m1", 100),
        llm("l2", "2026-11-20T10:50:00Z", "m1", 250),
        llm("l3", "2026-11-20T10:55:00Z", "m2", 40),
        # a page count sent as text is no number: counted as an event, summed as nothing
        call("a4", "2026-11-20T11:00:00Z", feature="chat", model="m1", user="u3",
             properties={"pages": "x"}),
        call("g1", "2026-11-20T10:30:00Z", tenant="globex", feature="chat", model="m1",
             user="u9", latency_ms="50", properties={"pages": 10}),
    )  # fmt: skip
    rollup_pending_run()
    return acme, globex, meters


def rows(meter: Meter) -> dict[tuple, tuple]:
    """(tenant external id, hour, group values) -> (events, sum, max, latest, latest_at)."""
    return {
        (r.tenant.external_id, r.hour, tuple(json.loads(r.group_key))): (
            r.events,
            r.sum,
            r.max,
            r.latest,
            r.latest_at,
        )
        for r in MeterRollup.objects.filter(meter=meter).select_related("tenant")
    }


def snapshot() -> list[tuple]:
    fields = [f.attname for f in MeterRollup._meta.concrete_fields if f.name != "id"]
    return sorted(tuple(row) for row in MeterRollup.objects.values_list(*fields))


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_every_kind_of_meter_gets_its_hourly_rows(rolled_up):
    _, _, meters = rolled_up
    counts = {k: v[0] for k, v in rows(meters["calls"]).items()}
    assert counts == {("acme", H10, ()): 3, ("acme", H11, ()): 1, ("globex", H10, ()): 1}

    # filtered on feature=chat, grouped by model: a3 (search) is left out
    by_model = {k: v[0] for k, v in rows(meters["chat_by_model"]).items()}
    assert by_model == {
        ("acme", H10, ("m1",)): 1,
        ("acme", H10, ("m2",)): 1,
        ("acme", H11, ("m1",)): 1,
        ("globex", H10, ("m1",)): 1,
    }

    tokens = {k: (v[0], v[1]) for k, v in rows(meters["tokens_by_model"]).items()}
    assert tokens == {
        ("acme", H10, ("m1",)): (2, Decimal(100 + 250)),
        ("acme", H10, ("m2",)): (1, Decimal(40)),
    }

    slowest = {k: v[2] for k, v in rows(meters["slowest"]).items()}
    assert slowest == {
        ("acme", H10, ()): Decimal("300.5"),
        ("acme", H11, ()): None,  # a4 sent no latency
        ("globex", H10, ()): Decimal("50"),
    }

    # unique counts are not additive over hours: the hourly row holds the events only
    users = rows(meters["users"])
    assert {k: v[:2] for k, v in users.items()} == {
        ("acme", H10, ()): (3, None),
        ("acme", H11, ()): (1, None),
        ("globex", H10, ()): (1, None),
    }

    pages = {k: (v[0], v[1], v[2]) for k, v in rows(meters["pages"]).items()}
    assert pages == {
        ("acme", H10, ()): (3, Decimal(2 + 3), Decimal(3)),
        ("acme", H11, ()): (1, None, None),
        ("globex", H10, ()): (1, Decimal(10), Decimal(10)),
    }

    # the hour's last event is a3 at 10:40, which says 7 seats
    seats = rows(meters["seats"])
    assert seats[("acme", H10, ())][3:] == (Decimal(7), datetime(2026, 11, 20, 10, 40, tzinfo=UTC))


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_the_hourly_rows_add_up_to_the_raw_event_quantities(rolled_up):
    acme, _, meters = rolled_up
    start, end = H10, H11 + timedelta(hours=1)
    for code in ("calls", "chat_by_model", "tokens_by_model", "pages"):
        meter = meters[code]
        summed: dict[tuple, Decimal] = {}
        for (tenant, _, group), (events, total, *_) in rows(meter).items():
            if tenant == "acme":
                amount = events if meter.aggregation == "count" else (total or Decimal(0))
                summed[group] = summed.get(group, Decimal(0)) + amount
        reference = meter_quantities(meter=meter, tenant_id=acme.id, start=start, end=end)
        assert summed == {k: v for k, v in reference.items() if v}, code


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_rebuilding_one_meter_hour_by_hour_gives_the_same_rows(rolled_up):
    _, _, meters = rolled_up
    before = snapshot()
    assert len(before) == 3 + 4 + 2 + 3 + 3 + 3 + 3  # the rows of the test above
    MeterRollup.objects.all().delete()

    for meter in meters.values():
        after = None
        for _ in range(10):  # three (tenant, hour) pairs, one hour at a time
            after = meter_rollups_rebuild(meter_id=meter.id, after=after, chunk=1)
            if after is None:
                break
        assert after is None

    assert snapshot() == before
