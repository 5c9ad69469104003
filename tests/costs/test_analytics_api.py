"""GET /api/v1/analytics/<metric>: operator-wide keys with the read scope only; a bad period,
group_by, tenant or metric is a 400 whose ``field`` names the parameter."""

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from tests.costs import traffic as t

NOW = datetime(2026, 11, 2, tzinfo=UTC)
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture
def tenants(make_tenant):
    return t.traffic_send(make_tenant)


@pytest.fixture
def operator(api, make_key):
    return api(make_key(scopes=("read",)))


def test_an_operator_key_reads_a_metric_by_group(tenants, operator):
    acme = tenants["acme"]

    response = operator.get(
        "/api/v1/analytics/cost",
        {"period": "2026-10", "group_by": "feature", "tenant": str(acme.id)},
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["metric"], body["period"], body["group_by"]) == ("cost", "2026-10", ["feature"])
    # acme's chat calls: every October acme call but A8 and B5 (both "search", both uncosted)
    chat = t.ACME_DAY1 + t.ACME_DAY2 - t.A8 - t.B5
    assert [(r["group"], r["value"], r["calls"]) for r in body["rows"]] == [
        ({"feature": "chat"}, "0.16685", 11),
        ({"feature": "search"}, "0", 2),
    ]
    assert chat == D("0.16685")
    # September: S1..S4 are all chat
    assert body["rows"][0]["previous"] == "0.1134"


def test_every_metric_of_the_app_answers(tenants, operator):
    for metric in (
        "cost",
        "cost_per_call",
        "requests",
        "amplification",
        "call_mix",
        "tokens_per_request",
        "retries",
        "cache",
        "cost_per_run",
        "coverage",
        "workflow_depth",
        "margin",
        "marginal_cost",
    ):
        response = operator.get(f"/api/v1/analytics/{metric}", {"period": "2026-10"})
        assert response.status_code == 200, (metric, response.content)
        assert response.json()["metric"] == metric


def test_the_default_grouping_of_a_metric_applies_without_group_by(tenants, operator):
    body = operator.get("/api/v1/analytics/workflow_depth", {"period": "2026-10"}).json()
    assert body["group_by"] == ["workflow"]
    # and an empty group_by is the total
    body = operator.get(
        "/api/v1/analytics/workflow_depth", {"period": "2026-10", "group_by": ""}
    ).json()
    assert (body["group_by"], body["rows"][0]["runs"]) == ([], 2)


def test_a_tenant_bound_key_is_refused(tenants, api, make_key):
    key = make_key(scopes=("read",), tenant=tenants["acme"])

    response = api(key).get("/api/v1/analytics/cost", {"period": "2026-10"})

    assert response.status_code == 403
    assert "operator-wide" in response.json()["error"]["message"]


def test_a_key_without_the_read_scope_is_refused(db, api, make_key):
    response = api(make_key(scopes=("ingest",))).get(
        "/api/v1/analytics/cost", {"period": "2026-10"}
    )
    assert response.status_code == 403


def test_no_key_is_refused(db, client):
    response = client.get("/api/v1/analytics/cost", {"period": "2026-10"})
    assert response.status_code in (401, 403)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("cost", {}, "period"),
        ("cost", {"period": "october"}, "period"),
        ("cost", {"period": "2026-10-12..2026-10-01"}, "period"),
        ("cost", {"period": "2026-10", "group_by": "colour"}, "group_by"),
        ("cost", {"period": "2026-10", "group_by": "feature,feature"}, "group_by"),
        ("margin", {"period": "2026-10", "group_by": "model"}, "group_by"),
        ("workflow_depth", {"period": "2026-10", "group_by": "feature"}, "group_by"),
        ("cost", {"period": "2026-10", "tenant": "acme"}, "tenant"),
        ("profit", {"period": "2026-10"}, "metric"),
    ],
)
def test_a_bad_query_is_a_400_naming_the_parameter(db, operator, path, params, field):
    response = operator.get(f"/api/v1/analytics/{path}", params)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("analytics_query_invalid", field)
    assert error["message"].startswith(f"{field}:")


@pytest.mark.parametrize("period", ["0001-01", "0001-01-01..0001-01-05", "9999-12"])
def test_a_period_whose_neighbour_is_outside_the_calendar_is_a_400(make_key, api, period):
    """Every metric compares with the previous period: the first year has none."""
    response = api(make_key()).get(f"/api/v1/analytics/cost?period={period}")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "period"
