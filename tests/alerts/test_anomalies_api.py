"""The anomalies API: operator keys list and filter, admin keys acknowledge and resolve,
tenant-bound keys get 403; bad input is an error naming the field and changes nothing."""

from datetime import timedelta

import pytest

from apps.alerts.models import Anomaly
from apps.alerts.services.anomalies import anomalies_detect
from tests.alerts.test_anomalies import NOW, H, at_h, prices, traffic

__all__ = ["NOW", "prices"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock", "prices")]


@pytest.fixture
def detected(make_tenant):
    acme = make_tenant("acme")
    traffic(acme, plant=at_h(lambda s: s["chat"].update(model="gpt-big")))
    anomalies_detect(as_of=NOW)
    return acme


@pytest.fixture
def admin(make_key, api):
    return api(make_key(scopes=("read", "admin")))


@pytest.fixture
def reader(make_key, api):
    return api(make_key(scopes=("read",)))


def error(response) -> dict:
    return response.json()["error"]


def test_list_and_filter(detected, reader):
    listed = reader.get("/api/v1/anomalies")
    assert listed.status_code == 200, listed.content
    rows = listed.json()["results"]
    assert sorted((r["scope"], r["scope_value"]) for r in rows) == [
        ("endpoint", "/v1/chat"),
        ("feature", "chat"),
        ("tenant", ""),
    ]
    chat = next(r for r in rows if r["scope"] == "feature")
    assert chat["tenant"] == "acme"
    assert chat["kind"] == "cost_jump"
    assert chat["observed"] == "0.008000000000"
    assert (chat["cause_dimension"], chat["cause_value"]) == ("model", "gpt-big")
    assert chat["hour"] == "2026-11-30T13:00:00Z"
    assert chat["status"] == "open"

    assert len(reader.get("/api/v1/anomalies", {"kind": "cost_jump"}).json()["results"]) == 3
    assert reader.get("/api/v1/anomalies", {"kind": "retry_storm"}).json()["results"] == []
    assert len(reader.get("/api/v1/anomalies", {"tenant": "acme"}).json()["results"]) == 3
    later = (H + timedelta(hours=1)).isoformat()
    assert reader.get("/api/v1/anomalies", {"since": later}).json()["results"] == []
    assert len(reader.get("/api/v1/anomalies", {"limit": 1}).json()["results"]) == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "closed"}, "status"),
        ({"kind": "spike"}, "kind"),
        ({"since": "yesterday"}, "since"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_bad_filters_name_the_field(detected, reader, params, field):
    response = reader.get("/api/v1/anomalies", params)
    assert response.status_code == 400
    assert error(response)["code"] == "anomaly_query_invalid"
    assert error(response)["field"] == field


def test_unknown_tenant_is_404(detected, reader):
    assert reader.get("/api/v1/anomalies", {"tenant": "nobody"}).status_code == 404


def test_acknowledge_then_resolve(detected, admin):
    anomaly = Anomaly.objects.get(scope="feature")
    url = f"/api/v1/anomalies/{anomaly.id}"
    acknowledged = admin.post(f"{url}/acknowledge")
    assert acknowledged.status_code == 200, acknowledged.content
    assert acknowledged.json()["status"] == "acknowledged"
    resolved = admin.post(f"{url}/resolve")
    assert resolved.json()["status"] == "resolved"
    again = admin.post(f"{url}/acknowledge")
    assert again.status_code == 409
    assert error(again)["code"] == "anomaly_status_invalid"
    anomaly.refresh_from_db()
    assert anomaly.status == "resolved"


def test_unknown_anomaly_is_404(admin, db):
    response = admin.post("/api/v1/anomalies/00000000-0000-0000-0000-000000000000/resolve")
    assert response.status_code == 404
    assert error(response)["code"] == "anomaly_not_found"
    assert admin.post("/api/v1/anomalies/junk/resolve").status_code == 404


def test_read_key_cannot_resolve_and_tenant_keys_are_refused(detected, reader, make_key, api):
    anomaly = Anomaly.objects.get(scope="feature")
    assert reader.post(f"/api/v1/anomalies/{anomaly.id}/resolve").status_code == 403
    bound = api(make_key(tenant=detected))
    assert bound.get("/api/v1/anomalies").status_code == 403
    assert bound.post(f"/api/v1/anomalies/{anomaly.id}/acknowledge").status_code == 403
    anomaly.refresh_from_db()
    assert anomaly.status == "open"
