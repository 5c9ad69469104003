"""Anomaly detection on five weeks of demo-like hourly traffic: a steady series gives nothing,
each planted anomaly is found with its kind and the dimension that caused it.

Traffic per tenant and hour (``traffic``): a daily shape (night 0.3, office hours 1.0) and a
weekend dip (0.5), times a seeded +-8 % noise, split into
- chat: feature chat, endpoint /v1/chat, workflow support, openai/gpt-mini; 500 input and 100
  output tokens a call; every call traced, a workflow run (root call) per 4 calls; 1 % retried;
- search: feature search, endpoint /v1/search, workflow triage, searchco; a run per 2 calls.
Prices (per 1,000,000 tokens): gpt-mini 1.00 in / 2.00 out, gpt-big 10.00 in / 30.00 out;
searchco/search 0.002 a call. So a chat call costs (500 * 1 + 100 * 2) / 1e6 = 0.0007 on
gpt-mini and (500 * 10 + 100 * 30) / 1e6 = 0.008 on gpt-big.
The judged hour H is Monday 2026-11-30 13:00 UTC, compared with the 4 Mondays before.
"""

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from apps.alerts.errors import AnomalyNotFound, AnomalyStatusInvalid
from apps.alerts.models import Anomaly
from apps.alerts.services.anomalies import (
    anomalies_detect,
    anomaly_acknowledge,
    anomaly_resolve,
)
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.core.models import OutboxEvent
from apps.metering.models import UsageRollup
from apps.metering.services.rollup import rollup_pending_run
from tests.metering.ingesting import ingest_events

NOW = datetime(2026, 11, 30, 14, 20, tzinfo=UTC)
H = datetime(2026, 11, 30, 13, tzinfo=UTC)
WEEKS = 5
PRICE_BOOK = {
    "price_book": [
        {
            "effective_from": "2026-01-01",
            "note": "anomaly test prices",
            "llm": [
                {"provider": "openai", "model": "gpt-mini", "input": "1.00", "output": "2.00"},
                {"provider": "openai", "model": "gpt-big", "input": "10.00", "output": "30.00"},
            ],
            "apis": [{"provider": "searchco", "endpoint": "/v1/search", "per_call": "0.002"}],
        }
    ]
}
CHAT_MINI = (500 * D("1.00") + 100 * D("2.00")) / 1_000_000  # 0.0007
CHAT_BIG = (500 * D("10.00") + 100 * D("30.00")) / 1_000_000  # 0.008

Spec = dict[str, dict]
Plant = Callable[[datetime, Spec], None]


def shape(hour: datetime) -> float:
    h = hour.hour
    daily = 0.3 if h < 7 else 0.7 if h < 10 else 1.0 if h < 18 else 0.6 if h < 22 else 0.4
    return daily * (0.5 if hour.weekday() >= 5 else 1.0)


def hour_spec(hour: datetime, scale: int, rng: random.Random) -> Spec:
    chat = max(1, int(scale * shape(hour) * rng.uniform(0.92, 1.08)))
    search = max(1, int(scale * 0.3 * shape(hour) * rng.uniform(0.92, 1.08)))
    return {
        "chat": {
            "event_type": "llm.call",
            "feature": "chat",
            "endpoint": "/v1/chat",
            "workflow": "support",
            "environment": "prod",
            "provider": "openai",
            "model": "gpt-mini",
            "events": chat,
            "input_tokens": 500 * chat,
            "output_tokens": 100 * chat,
            "traced_calls": chat,
            "root_calls": max(1, chat // 4),
            "retries": round(chat * 0.01),
        },
        "search": {
            "event_type": "api.call",
            "feature": "search",
            "endpoint": "/v1/search",
            "workflow": "triage",
            "environment": "prod",
            "provider": "searchco",
            "external": True,
            "events": search,
            "traced_calls": search,
            "root_calls": max(1, search // 2),
            "retries": round(search * 0.01),
        },
    }


def traffic(
    tenant,
    *,
    scale: int = 1000,
    seed: int = 7,
    plant: Plant | None = None,
    start: datetime | None = None,
    end: datetime = H + timedelta(hours=1),
) -> None:
    """Hourly usage rollups of ``tenant`` from ``start`` (5 weeks before H) to ``end``;
    ``plant`` may change the spec of any hour."""
    rng = random.Random(seed)
    hour = start or H - timedelta(weeks=WEEKS)
    rows = []
    while hour < end:
        spec = hour_spec(hour, scale, rng)
        if plant is not None:
            plant(hour, spec)
        rows += [UsageRollup(tenant=tenant, hour=hour, **fields) for fields in spec.values()]
        hour += timedelta(hours=1)
    UsageRollup.objects.bulk_create(rows, batch_size=2000)


def at_h(change: Callable[[Spec], None]) -> Plant:
    def plant(hour: datetime, spec: Spec) -> None:
        if hour == H:
            change(spec)

    return plant


@pytest.fixture
def prices(db):
    catalog_apply(doc=catalog_parse(content=json.dumps(PRICE_BOOK)))


def found(tenant, scope="tenant", value="", hour=H) -> dict[str, Anomaly]:
    rows = Anomaly.objects.filter(tenant=tenant, scope=scope, scope_value=value, hour=hour)
    return {a.kind: a for a in rows}


def test_a_steady_series_gives_no_anomaly(prices, make_tenant, clock):
    steady = make_tenant("steady")
    traffic(steady)
    assert anomalies_detect(as_of=NOW) == []
    assert not Anomaly.objects.exists()


def test_a_model_switch_is_a_cost_jump_caused_by_the_model(prices, make_tenant, clock):
    # given chat moving from gpt-mini to gpt-big at H, at the same traffic
    acme = make_tenant("acme")
    steady = make_tenant("steady")
    traffic(acme, plant=at_h(lambda s: s["chat"].update(model="gpt-big")))
    traffic(steady, seed=8)
    anomalies_detect(as_of=NOW)
    chat = found(acme, "feature", "chat")
    assert set(chat) == {"cost_jump"}
    jump = chat["cost_jump"]
    # cost per call 0.008 against a median of 0.0007 with MAD 0 (floored at 5 % of the
    # median, 0.000035): z = 0.6745 * (0.008 - 0.0007) / 0.000035 = 140.6814
    assert jump.observed == CHAT_BIG
    assert jump.baseline_median == CHAT_MINI
    assert jump.baseline_mad == 0
    assert jump.baseline_method == "hour_of_week"
    assert jump.score == D("140.6814")
    assert (jump.cause_dimension, jump.cause_value) == ("model", "gpt-big")
    assert jump.evidence["hour"]["cost_per_call"] == "0.008000000000"
    assert jump.evidence["baseline_median"]["cost_per_call"] == "0.000700000000"
    assert jump.evidence["cause_share_shift"] == "1.000000"  # all of the cost moved to gpt-big
    whole = found(acme)
    assert "cost_jump" in whole and "traffic_spike" not in whole
    assert (whole["cost_jump"].cause_dimension, whole["cost_jump"].cause_value) == (
        "model",
        "gpt-big",
    )
    assert found(acme, "endpoint", "/v1/chat").keys() == {"cost_jump"}
    assert not found(acme, "feature", "search")
    assert not Anomaly.objects.filter(tenant=steady).exists()
    # only H was anomalous among the judged hours 11:00, 12:00 and 13:00
    assert set(Anomaly.objects.values_list("hour", flat=True)) == {H}


def test_a_retry_storm(prices, make_tenant, clock):
    # given 30 % more chat calls at H, all of them retries
    def storm(spec: Spec) -> None:
        chat = spec["chat"]
        extra = int(chat["events"] * 0.3)
        for name in ("events", "traced_calls"):
            chat[name] += extra
        chat["input_tokens"] += 500 * extra
        chat["output_tokens"] += 100 * extra
        chat["retries"] += extra

    acme = make_tenant("acme")
    traffic(acme, plant=at_h(storm))
    anomalies_detect(as_of=NOW)
    chat = found(acme, "feature", "chat")
    assert "retry_storm" in chat
    assert "traffic_spike" not in chat and "cost_jump" not in chat  # 1.3x is no spike
    storm_row = chat["retry_storm"]
    assert storm_row.observed > D("0.2") and storm_row.baseline_median < D("0.02")
    # within chat every retry is gpt-mini's, before and now: nothing in the mix moved
    assert (storm_row.cause_dimension, storm_row.cause_value) == ("", "")
    # across the tenant, gpt-mini's share of the retries grew (search kept its 1 %)
    whole = found(acme)["retry_storm"]
    assert (whole.cause_dimension, whole.cause_value) == ("model", "gpt-mini")


def test_a_tokens_jump(prices, make_tenant, clock):
    # given chat prompts growing from 500 to 2000 input tokens a call at H
    acme = make_tenant("acme")
    traffic(acme, plant=at_h(lambda s: s["chat"].update(input_tokens=2000 * s["chat"]["events"])))
    anomalies_detect(as_of=NOW)
    chat = found(acme, "feature", "chat")
    # tokens per call (2000 + 100) against 600; and cost per call with it
    assert chat["tokens_jump"].observed == D(2100)
    assert chat["tokens_jump"].baseline_median == D(600)
    assert "cost_jump" in chat and "traffic_spike" not in chat


def test_an_amplification_jump_names_the_workflow(prices, make_tenant, clock):
    # given support's runs making 12 calls instead of 4 at H (as many runs, 3x the calls)
    def deeper(spec: Spec) -> None:
        chat = spec["chat"]
        runs = chat["root_calls"]
        calls = runs * 12
        chat.update(
            events=calls,
            traced_calls=calls,
            input_tokens=500 * calls,
            output_tokens=100 * calls,
            retries=round(calls * 0.01),
        )

    acme = make_tenant("acme")
    traffic(acme, plant=at_h(deeper))
    anomalies_detect(as_of=NOW)
    chat = found(acme, "feature", "chat")
    assert chat["amplification_jump"].observed == D(12)
    assert chat["amplification_jump"].baseline_median > D("3.9")
    whole = found(acme)["amplification_jump"]
    assert (whole.cause_dimension, whole.cause_value) == ("workflow", "support")


def test_a_pure_traffic_spike_is_no_cost_jump(prices, make_tenant, clock):
    # given three times the calls of both features at H, each call costing what it did
    def spike(spec: Spec) -> None:
        for row in spec.values():
            for name in ("events", "input_tokens", "output_tokens", "traced_calls", "root_calls"):
                if name in row:
                    row[name] *= 3

    acme = make_tenant("acme")
    traffic(acme, plant=at_h(spike))
    anomalies_detect(as_of=NOW)
    whole = found(acme)
    assert "traffic_spike" in whole
    assert "cost_jump" not in whole
    assert "traffic_spike" in found(acme, "feature", "chat")
    assert "traffic_spike" in found(acme, "endpoint", "/v1/search")
    # the mix did not change: no cause to name
    assert whole["traffic_spike"].cause_dimension == ""


def test_a_tiny_series_does_not_flag(prices, make_tenant, clock):
    # given 2 calls an hour switching models: cost per call jumps 11x, but the hour's extra
    # cost is cents and there are fewer than 20 calls
    tiny = make_tenant("tiny")
    traffic(tiny, scale=2, plant=at_h(lambda s: s["chat"].update(model="gpt-big")))
    anomalies_detect(as_of=NOW)
    assert not Anomaly.objects.exists()


def test_short_history_uses_a_rolling_window(prices, make_tenant, clock):
    # given a tenant that started 2 days before H
    fresh = make_tenant("fresh")
    traffic(
        fresh,
        start=H - timedelta(days=2),
        plant=at_h(lambda s: s["chat"].update(model="gpt-big")),
    )
    anomalies_detect(as_of=NOW)
    jump = found(fresh, "feature", "chat")["cost_jump"]
    assert jump.baseline_method == "rolling"
    assert jump.baseline_median == CHAT_MINI
    assert (jump.cause_dimension, jump.cause_value) == ("model", "gpt-big")


def _chat_event(i: int, at: datetime, deployment: str, model: str, input_tokens: int) -> dict:
    return {
        "id": f"dep-{i}",
        "tenant": "deploy",
        "type": "llm.call",
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "feature": "chat",
        "endpoint": "/v1/chat",
        "workflow": "support",
        "environment": "prod",
        "provider": "openai",
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": 100,
        "properties": {"deployment": deployment},
    }


def released(tenant, *, model: str, input_tokens: int, calls: int = 40) -> None:
    """Chat on deployment v1 (gpt-mini, 500-token prompts) for 5 weeks, then v2 at H with
    ``model`` and ``input_tokens``; the 24 hours before H and H itself arrive as raw events
    (``calls`` an hour), the weeks before as rollups."""
    raw_from = H - timedelta(hours=24)
    traffic(tenant, scale=calls, end=raw_from)
    events, hour = [], raw_from
    while hour <= H:
        v2 = hour == H
        for n in range(calls):
            at = hour + timedelta(seconds=30 * n)
            version, used, tokens = ("v2", model, input_tokens) if v2 else ("v1", "gpt-mini", 500)
            events.append(_chat_event(len(events), at, version, used, tokens))
        hour += timedelta(hours=1)
    for start in range(0, len(events), 500):
        ingest_events(*events[start : start + 500])
    rollup_pending_run()


def test_a_deployment_tag_is_found_in_raw_events(prices, make_tenant, clock):
    # given v2 growing prompts from 500 to 2000 tokens on the same model
    tenant = make_tenant("deploy")
    released(tenant, model="gpt-mini", input_tokens=2000)
    anomalies_detect(as_of=NOW)
    chat = found(tenant, "feature", "chat")
    tokens = chat["tokens_jump"]
    assert tokens.observed == D(2100)
    assert (tokens.cause_dimension, tokens.cause_value) == ("deployment", "v2")
    # v2 went from none of the tokens of the 24 hours before to all of them
    assert tokens.evidence["cause_candidates"] == [
        {"dimension": "deployment", "value": "v2", "share_shift": "1.000000"}
    ]


def test_a_release_that_switches_the_model_names_the_model_and_keeps_the_release(
    prices, make_tenant, clock
):
    # given v2 moving chat to gpt-big with the same prompts: model and release moved alike
    # (100 calls an hour: the hour's cost rises 100 * (0.008 - 0.0007) = 0.73, over 0.50)
    tenant = make_tenant("deploy")
    released(tenant, model="gpt-big", input_tokens=500, calls=100)
    anomalies_detect(as_of=NOW)
    jump = found(tenant, "feature", "chat")["cost_jump"]
    assert jump.observed == CHAT_BIG
    assert (jump.cause_dimension, jump.cause_value) == ("model", "gpt-big")
    candidates = [(c["dimension"], c["value"]) for c in jump.evidence["cause_candidates"]]
    assert candidates == [("model", "gpt-big"), ("deployment", "v2")]


def test_detecting_again_updates_and_publishes_once(prices, make_tenant, clock):
    acme = make_tenant("acme")
    traffic(acme, plant=at_h(lambda s: s["chat"].update(model="gpt-big")))
    first = anomalies_detect(as_of=NOW)
    count = Anomaly.objects.count()
    published = OutboxEvent.objects.filter(topic="anomaly.detected")
    assert count == len(first) == published.count() == 3  # tenant, chat, /v1/chat
    payload = published.filter(data__scope="feature").get().data
    assert (payload["kind"], payload["cause_value"], payload["tenant"]) == (
        "cost_jump",
        "gpt-big",
        "acme",
    )
    acknowledged = anomaly_acknowledge(anomaly_id=first[0].id)
    # a later run (the next hour) judges H again: same rows, no new event, status kept
    anomalies_detect(as_of=NOW + timedelta(hours=1))
    assert Anomaly.objects.count() == count
    assert published.count() == 3
    acknowledged.refresh_from_db()
    assert acknowledged.status == "acknowledged"


def test_acknowledge_and_resolve(prices, make_tenant, clock):
    acme = make_tenant("acme")
    traffic(acme, plant=at_h(lambda s: s["chat"].update(model="gpt-big")))
    anomaly = anomalies_detect(as_of=NOW)[0]
    assert anomaly_acknowledge(anomaly_id=anomaly.id).status == "acknowledged"
    assert anomaly_acknowledge(anomaly_id=anomaly.id).status == "acknowledged"  # idempotent
    assert anomaly_resolve(anomaly_id=anomaly.id).status == "resolved"
    with pytest.raises(AnomalyStatusInvalid):
        anomaly_acknowledge(anomaly_id=anomaly.id)
    with pytest.raises(AnomalyNotFound):
        anomaly_resolve(anomaly_id="not-a-uuid")


def test_a_move_across_tenants_is_an_operator_wide_anomaly(prices, make_tenant, clock):
    # given three tenants of about the same size all moving chat to gpt-big at H: no one of
    # them explains half of the move, so the feature across every tenant flags too
    tenants = [make_tenant(name) for name in ("acme", "globex", "initech")]
    for seed, tenant in enumerate(tenants):
        traffic(tenant, seed=seed, plant=at_h(lambda s: s["chat"].update(model="gpt-big")))
    anomalies_detect(as_of=NOW)
    operator = found(None, "feature", "chat")
    assert set(operator) == {"cost_jump"}
    jump = operator["cost_jump"]
    assert jump.observed == CHAT_BIG and jump.baseline_median == CHAT_MINI
    assert (jump.cause_dimension, jump.cause_value) == ("model", "gpt-big")
    assert found(None, "endpoint", "/v1/chat").keys() == {"cost_jump"}
    assert all("cost_jump" in found(t, "feature", "chat") for t in tenants)


def test_anomaly_events_are_the_operators_own(prices, make_tenant, clock):
    acme = make_tenant("acme")
    traffic(acme, plant=at_h(lambda s: s["chat"].update(model="gpt-big")))
    anomalies_detect(as_of=NOW)
    # cost figures never reach a tenant's webhook endpoints: published with no tenant
    events = OutboxEvent.objects.filter(topic="anomaly.detected")
    assert events.count() == 3
    assert set(events.values_list("tenant_id", flat=True)) == {None}
    # one tenant's move across every tenant is that tenant's anomaly: none stored for None
    assert not Anomaly.objects.filter(tenant=None).exists()
