"""The forecasts API: the latest snapshot per scope with its band, and accuracy (MAPE)."""

from datetime import date
from decimal import Decimal as D

import pytest

from apps.alerts.services.forecasts import forecasts_snapshot
from tests.alerts.test_forecasts import MADE_ON, NOW, _snap, world

__all__ = ["NOW", "world"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture
def reader(make_key, api):
    return api(make_key(scopes=("read",)))


def error(response) -> dict:
    return response.json()["error"]


def test_latest_snapshot_per_scope(world, reader):
    forecasts_snapshot(made_on=date(2026, 11, 14))
    forecasts_snapshot(made_on=MADE_ON)
    response = reader.get("/api/v1/forecasts", {"period": "2026-11"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["period"] == "2026-11"
    assert {r["made_on"] for r in body["results"]} == {"2026-11-15"}  # the newest only
    assert len(body["results"]) == 7
    acme = next(r for r in body["results"] if r["scope_key"] == "acme")
    # 30 days of 10.00 (see test_forecasts)
    assert (acme["forecast"], acme["lower"], acme["upper"]) == (
        "300.000000000000",
        "300.000000000000",
        "300.000000000000",
    )
    assert acme["actual"] is None
    centers = reader.get(
        "/api/v1/forecasts", {"period": "2026-11", "scope": "cost_center", "measure": "cost"}
    ).json()["results"]
    assert sorted(r["scope_key"] for r in centers) == ["", "ml"]
    assert reader.get("/api/v1/forecasts", {"period": "2026-10"}).json()["results"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "period"),
        ({"period": "2026-13"}, "period"),
        ({"period": "2026-11", "scope": "galaxy"}, "scope"),
        ({"period": "2026-11", "measure": "profit"}, "measure"),
    ],
)
def test_bad_queries_name_the_field(reader, db, params, field):
    response = reader.get("/api/v1/forecasts", params)
    assert response.status_code == 400
    assert (error(response)["code"], error(response)["field"]) == ("forecast_query_invalid", field)


def test_accuracy(reader, db):
    # ml: 10 % and 20 % -> 15.00; ops 25 % -> overall (10 + 20 + 25) / 3 = 18.33
    _snap("ml", "90", "100", date(2026, 10, 5))
    _snap("ml", "120", "100", date(2026, 10, 6))
    _snap("ops", "50", "40", date(2026, 10, 5))
    response = reader.get("/api/v1/forecasts/accuracy", {"period": "2026-10"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["period"] == "2026-10"
    assert [(c["cost_center"], c["mape_pct"]) for c in body["cost_centers"]] == [
        ("ml", "15.00"),
        ("ops", "25.00"),
    ]
    assert body["overall"] == {"snapshots": 3, "excluded_zero_actual": 0, "mape_pct": "18.33"}
    assert D(body["overall"]["mape_pct"]) == D("18.33")


def test_tenant_keys_are_refused(world, make_key, api):
    bound = api(make_key(tenant=world[0]))
    assert bound.get("/api/v1/forecasts", {"period": "2026-11"}).status_code == 403
    assert bound.get("/api/v1/forecasts/accuracy", {"period": "2026-11"}).status_code == 403


@pytest.mark.parametrize("period", ["0000-01", "9999-12"])
def test_a_month_outside_the_calendar_is_a_400(make_key, api, period):
    operator = api(make_key())

    for path in ("/api/v1/forecasts", "/api/v1/forecasts/accuracy"):
        response = operator.get(f"{path}?period={period}")
        assert response.status_code == 400
        assert response.json()["error"]["field"] == "period"
