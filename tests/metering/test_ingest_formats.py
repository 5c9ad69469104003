"""CloudEvents 1.0 (structured, batch, binary) and OpenTelemetry attribute names on ingestion."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.metering.models import Event

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
URL = "/api/v1/events"
CE = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture
def operator(make_tenant, make_key, api):
    make_tenant("acme")
    return api(make_key())


def cloud_event(event_id="ce-1", data=None, **attributes):
    """A CloudEvent for tenant acme (its subject)."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "//gateway.example/eu-1",
        "type": "llm.call",
        "subject": "acme",
        "time": "2026-11-20T11:59:58.250+01:00",
        **({"data": data} if data is not None else {}),
        **attributes,
    }


def otel_event(event_id="e1", **properties):
    """A plain event whose attributes come only as OpenTelemetry names in properties."""
    return {"id": event_id, "tenant": "acme", "type": "llm.call", "properties": properties}


def ingest(client, *events):
    return client.post(URL, {"events": list(events)})


def accepted(response):
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] >= 1, response.json()
    return Event.objects.order_by("event_id")


def rejection(response):
    assert response.status_code == 207, response.content
    (result,) = response.json()["results"]
    assert result["status"] == "rejected"
    assert not Event.objects.exists()
    return result


# --- CloudEvents ---------------------------------------------------------------------------


def test_structured_cloud_event_maps_subject_time_and_data(operator):
    data = {
        "model": "gpt-4o",
        "input_tokens": 1200,
        "cost": "0.0031",
        "region": "eu-west-1",
        "properties": {"plan": "pro"},
    }

    response = operator.post(URL, cloud_event("ce-1", data), content_type=CE)

    (stored,) = accepted(response)
    assert stored.tenant.external_id == "acme"
    assert (stored.event_id, stored.type) == ("ce-1", "llm.call")
    assert stored.timestamp == datetime(2026, 11, 20, 10, 59, 58, 250000, tzinfo=UTC)
    assert (stored.model, stored.input_tokens, stored.cost) == ("gpt-4o", 1200, Decimal("0.0031"))
    assert stored.properties == {
        "plan": "pro",
        "region": "eu-west-1",
        "cloudevents.source": "//gateway.example/eu-1",
    }


def test_cloud_events_batch_stores_each_event_and_rejects_only_the_bad_one(operator):
    batch = [
        cloud_event("ce-1", {"input_tokens": 1}),
        cloud_event("ce-2", {"input_tokens": 2}, specversion="0.3"),
        cloud_event("ce-3", {"input_tokens": 3}),
    ]

    response = operator.post(URL, batch, content_type=CE_BATCH)

    assert response.status_code == 207
    assert response.json()["accepted"] == 2
    (result,) = response.json()["results"]
    assert (result["index"], result["id"], result["code"]) == (1, "ce-2", "invalid")
    assert result["message"].startswith("specversion:")
    stored = Event.objects.order_by("event_id").values_list("event_id", "input_tokens")
    assert list(stored) == [("ce-1", 1), ("ce-3", 3)]


def test_binary_mode_reads_context_from_ce_headers_and_data_from_the_body(operator):
    headers = {
        "ce-id": "bin-1",
        "ce-source": "//gateway.example",
        "ce-specversion": "1.0",
        "ce-type": "api.call",
        "ce-time": "2026-11-20T12:00:00.5Z",
        "ce-subject": "acme",
    }
    body = {"endpoint": "/v1/search", "status_code": 503, "attempt": 2, "customer_ref": "r-9"}

    response = operator.post(URL, body, **headers)

    (stored,) = accepted(response)
    assert (stored.event_id, stored.type) == ("bin-1", "api.call")
    assert stored.timestamp == datetime(2026, 11, 20, 12, 0, 0, 500000, tzinfo=UTC)
    assert (stored.endpoint, stored.status_code, stored.attempt) == ("/v1/search", 503, 2)
    assert stored.properties == {"customer_ref": "r-9", "cloudevents.source": "//gateway.example"}


def test_binary_mode_with_a_bad_specversion_is_rejected(operator):
    response = operator.post(
        URL,
        {"input_tokens": 1},
        **{"ce-id": "b", "ce-source": "s", "ce-specversion": "0.3", "ce-type": "api.call"},
    )

    assert rejection(response)["message"].startswith("specversion:")


def test_traceparent_extension_fills_trace_and_span_ids(operator):
    event = cloud_event("ce-1", {}, traceparent=f"00-{TRACE}-{SPAN}-01")

    (stored,) = accepted(operator.post(URL, event, content_type=CE))

    assert (stored.trace_id, stored.span_id) == (TRACE, SPAN)


def test_trace_id_in_data_wins_over_traceparent(operator):
    own = "a" * 32
    event = cloud_event("ce-1", {"trace_id": own}, traceparent=f"00-{TRACE}-{SPAN}-01")

    (stored,) = accepted(operator.post(URL, event, content_type=CE))

    assert (stored.trace_id, stored.span_id) == (own, SPAN)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        pytest.param({"specversion": "0.3"}, "specversion:", id="specversion"),
        pytest.param({"traceparent": "00-xyz-01"}, "traceparent:", id="traceparent"),
        pytest.param({"source": None}, "source", id="missing-source"),
        pytest.param({"subject": None}, "tenant:", id="missing-subject"),
        pytest.param({"data": {"input_tokens": -1}}, "input_tokens", id="bad-data"),
    ],
)
def test_bad_cloud_event_is_rejected_naming_the_attribute(operator, change, named):
    event = {k: v for k, v in (cloud_event("ce-1", {}) | change).items() if v is not None}

    result = rejection(operator.post(URL, event, content_type=CE))

    assert result["code"] == "invalid"
    assert named in result["message"]


def test_cloud_event_subject_of_another_tenant_is_a_mismatch_for_a_bound_key(
    make_tenant, make_key, api
):
    make_tenant("acme")
    beta = make_tenant("beta")
    client = api(make_key(scopes=["ingest"], tenant=beta))

    result = rejection(client.post(URL, cloud_event("ce-1", {}), content_type=CE))

    assert result["code"] == "tenant_mismatch"


def test_a_bare_json_list_needs_the_cloudevents_batch_content_type(operator):
    batch = json.dumps([cloud_event("ce-1", {})])

    assert operator.post(URL, batch).status_code == 400
    assert operator.post(URL, batch, content_type=CE_BATCH).status_code == 200


# --- OpenTelemetry names in properties ----------------------------------------------------

OTEL = [
    ("gen_ai.usage.input_tokens", 812, "input_tokens", 812),
    ("gen_ai.usage.prompt_tokens", 813, "input_tokens", 813),
    ("gen_ai.usage.output_tokens", "96", "output_tokens", 96),
    ("gen_ai.usage.completion_tokens", 97, "output_tokens", 97),
    ("gen_ai.usage.cache_read.input_tokens", 640, "cache_read_tokens", 640),
    ("gen_ai.usage.cache_creation.input_tokens", 128, "cache_write_tokens", 128),
    ("gen_ai.usage.reasoning.output_tokens", 2048, "reasoning_tokens", 2048),
    ("gen_ai.request.model", "gpt-4o", "model", "gpt-4o"),
    ("gen_ai.response.model", "gpt-4o-2024-08-06", "model", "gpt-4o-2024-08-06"),
    ("gen_ai.provider.name", "openai", "provider", "openai"),
    ("gen_ai.system", "anthropic", "provider", "anthropic"),
    ("http.route", "/v1/chat/{id}", "endpoint", "/v1/chat/{id}"),
    ("http.response.status_code", 429, "status_code", 429),
    ("http.request.resend_count", 2, "attempt", 3),  # resends + the first try
    ("http.request.resend_count", 0, "attempt", 1),
]


@pytest.mark.parametrize(("name", "value", "column", "expected"), OTEL)
def test_otel_attribute_fills_its_column_and_stays_in_properties(
    operator, name, value, column, expected
):
    (stored,) = accepted(ingest(operator, otel_event("e1", **{name: value})))

    assert getattr(stored, column) == expected
    assert stored.properties == {name: value}


@pytest.mark.parametrize(
    ("properties", "column", "expected"),
    [
        pytest.param(
            {"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06"},
            "model",
            "gpt-4o-2024-08-06",
            id="response-model-over-request-model",
        ),
        pytest.param(
            {"gen_ai.usage.prompt_tokens": 1, "gen_ai.usage.input_tokens": 2},
            "input_tokens",
            2,
            id="current-name-over-deprecated",
        ),
        pytest.param(
            {"gen_ai.system": "openai", "gen_ai.provider.name": "azure.ai.openai"},
            "provider",
            "azure.ai.openai",
            id="provider-name-over-system",
        ),
    ],
)
def test_otel_precedence_between_names(operator, properties, column, expected):
    (stored,) = accepted(ingest(operator, otel_event("e1", **properties)))

    assert getattr(stored, column) == expected


def test_explicit_attributes_win_over_otel_names(operator):
    event = otel_event(
        "e1",
        **{
            "gen_ai.response.model": "otel-model",
            "gen_ai.usage.input_tokens": 999,
            "http.route": "/otel",
            "http.request.resend_count": 4,
        },
    )
    event |= {"model": "own-model", "input_tokens": 10, "endpoint": "/own", "attempt": 1}

    (stored,) = accepted(ingest(operator, event))

    assert (stored.model, stored.input_tokens, stored.endpoint, stored.attempt) == (
        "own-model",
        10,
        "/own",
        1,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("gen_ai.usage.input_tokens", "lots"),
        ("gen_ai.usage.output_tokens", -3),
        ("gen_ai.usage.output_tokens", 5.5),
        ("gen_ai.response.model", 42),
        ("http.response.status_code", 700),
        ("http.request.resend_count", -1),
    ],
)
def test_bad_otel_value_is_rejected_naming_the_property(operator, name, value):
    result = rejection(ingest(operator, otel_event("e1", **{name: value})))

    assert result["code"] == "invalid"
    assert result["message"].startswith(f"properties.{name}:")


def test_otel_names_inside_cloud_event_data_are_mapped_too(operator):
    data = {"gen_ai.usage.input_tokens": 50, "gen_ai.request.model": "claude-sonnet"}

    (stored,) = accepted(operator.post(URL, cloud_event("ce-1", data), content_type=CE))

    assert (stored.input_tokens, stored.model) == (50, "claude-sonnet")


@pytest.mark.parametrize(
    ("name", "column", "limit"),
    [
        ("gen_ai.provider.name", "provider", 64),
        ("gen_ai.response.model", "model", 128),
        ("http.route", "endpoint", 200),
    ],
)
def test_long_otel_text_is_cut_to_its_column(operator, name, column, limit):
    """OTel names fill columns of fixed width: a longer value is kept to the width (the whole
    value stays in properties), never an error for the batch."""
    value = "x" * (limit + 40)

    (stored,) = accepted(ingest(operator, otel_event("e1", **{name: value})))

    assert getattr(stored, column) == "x" * limit
    assert stored.properties == {name: value}
