"""The leakage API: the reconciliation report, the findings queue, scans on demand; operator
keys only, errors that name the field."""

from datetime import UTC, datetime

import pytest

from apps.assurance.models import Finding
from apps.assurance.selectors import leakage_report
from apps.assurance.services.scans import leakage_scan
from apps.metering.models import IngestBatch
from apps.tenants.models import ApiKey
from tests.assurance.leakage_setup import (
    NOW,  # noqa: F401  (the clock fixture reads it)
    OCTOBER,
    calls,
    catalog_load,
    clean_acme,
    send,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture(autouse=True)
def catalog(db):
    catalog_load()


@pytest.fixture
def operator(api, make_key):
    return api(make_key(name="finance bot"))


@pytest.fixture
def late(make_tenant):
    acme = clean_acme(make_tenant)
    send(calls(5, day=30))  # 5 calls after October's invoice: 0.50 not yet billed
    return acme


def scan(operator, period="2026-10"):
    response = operator.post("/api/v1/leakage/scans", {"period": period})
    assert response.status_code == 201, response.content
    return response.json()


def test_a_scan_returns_its_counts(operator, late):
    body = scan(operator)

    assert body["period"] == "2026-10"
    assert body["counts"]["late_unbilled"] == 1 and sum(body["counts"].values()) == 1
    assert (body["opened"], body["resolved"]) == (1, 0)


def test_findings_are_listed_filtered_and_shown(operator, late):
    scan(operator)

    listed = operator.get("/api/v1/leakage/findings", {"period": "2026-10", "status": "open"})
    assert listed.status_code == 200
    [row] = listed.json()["results"]
    assert (row["category"], row["tenant"], row["subject"], row["basis"]) == (
        "late_unbilled",
        "acme",
        "calls",
        "list_price",
    )
    assert (row["quantity"], row["amount_at_risk"], row["currency"]) == (
        "5.000000000000",
        "0.500000000000",
        "USD",
    )
    none = operator.get("/api/v1/leakage/findings", {"category": "credit_drift"})
    assert none.json()["results"] == []
    detail = operator.get(f"/api/v1/leakage/findings/{row['id']}")
    assert detail.json()["evidence"]["late_events"] == 5


def test_bad_filters_name_the_field(operator, late):
    for params, field in (
        ({"status": "closed"}, "status"),
        ({"category": "fraud"}, "category"),
        ({"period": "October"}, "period"),
        ({"tenant": "nobody"}, "tenant"),
    ):
        response = operator.get("/api/v1/leakage/findings", params)
        assert response.status_code == 400, params
        assert response.json()["error"]["field"] == field


def test_acknowledge_then_resolve_with_who_and_why(operator, late):
    scan(operator)
    finding = Finding.objects.get()
    prefix = ApiKey.objects.get(name="finance bot").prefix

    acked = operator.post(f"/api/v1/leakage/findings/{finding.id}/acknowledge", {})
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    no_reason = operator.post(f"/api/v1/leakage/findings/{finding.id}/resolve", {})
    assert no_reason.status_code == 400
    assert Finding.objects.get().status == "acknowledged"
    resolved = operator.post(
        f"/api/v1/leakage/findings/{finding.id}/resolve", {"reason": "credited by hand"}
    )

    body = resolved.json()
    assert (body["status"], body["status_reason"]) == ("resolved", "credited by hand")
    assert body["status_by"] == f"api-key:{prefix} (finance bot)"
    again = operator.post(f"/api/v1/leakage/findings/{finding.id}/resolve", {"reason": "x"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "finding_transition_invalid"


def test_an_unknown_finding_is_404(operator, late):
    response = operator.get("/api/v1/leakage/findings/00000000-0000-0000-0000-000000000001")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "finding_not_found"


def test_scans_and_resolutions_need_an_operator_admin_key(api, make_key, late):
    reader = api(make_key(scopes=("read",)))
    assert reader.post("/api/v1/leakage/scans", {"period": "2026-10"}).status_code == 403
    assert not Finding.objects.exists()
    leakage_scan(period_start=OCTOBER)
    finding = Finding.objects.get()
    refused = reader.post(f"/api/v1/leakage/findings/{finding.id}/resolve", {"reason": "x"})
    assert refused.status_code == 403
    assert Finding.objects.get().status == "open"
    bound = api(make_key(tenant=late))
    assert bound.get("/api/v1/leakage/report", {"period": "2026-10"}).status_code == 403


def test_the_report_reconciles_events_and_money(make_key, late):
    make_key(tenant=late, name="acme gateway")
    prefix = ApiKey.objects.get(name="acme gateway").prefix
    # a batch acme's own key sent in October: 2 duplicates and 1 rejected event are acme's
    IngestBatch.objects.create(
        received_at=datetime(2026, 10, 20, tzinfo=UTC),
        api_key_prefix=prefix,
        content_type="application/json",
        accepted=0,
        duplicates=2,
        conflicts=0,
        rejected=1,
    )
    leakage_scan(period_start=OCTOBER)

    report = leakage_report(period_start=OCTOBER)

    [acme] = report["tenants"]
    # 30 calls + 2 LLM calls on time, 5 calls late: 37 events, all of a charged meter
    assert acme["events"] == {
        "received": 37,
        "stored": 37,
        "duplicates": 2,
        "conflicts": 0,
        "rejected": 1,
        "billable": 37,
    }
    # at list now: calls (35 - 10) x 0.10 = 2.50 + tokens 2.00 = 4.50; billed 2.00 + 2.00
    # = 4.00; accuracy 4.00 / 4.50 = 88.888... % -> 88.89
    assert (acme["billable_amount"], acme["billed_amount"], acme["credited_amount"]) == (
        "4.50",
        "4.00",
        "10.00",
    )
    assert (acme["at_risk_list_price"], acme["accuracy_pct"]) == ("0.50", "88.89")
    [usd] = report["total"]["by_currency"]
    assert (usd["billable_amount"], usd["billed_amount"], usd["at_risk_amount"]) == (
        "4.50",
        "4.00",
        "0.50",
    )
    assert report["total"]["accuracy_pct"] == "88.89"
    # ingest_events sends as an operator-wide caller: nothing of that batch is attributed
    assert report["total"]["unattributed_intake"] == {
        "duplicates": 0,
        "conflicts": 0,
        "rejected": 0,
    }


def test_a_clean_month_is_fully_billed(make_tenant):
    clean_acme(make_tenant)

    report = leakage_report(period_start=OCTOBER)

    [acme] = report["tenants"]
    # billable = billed = calls 2.00 + tokens 2.00
    assert (acme["billable_amount"], acme["billed_amount"], acme["accuracy_pct"]) == (
        "4.00",
        "4.00",
        "100.00",
    )
    assert (acme["at_risk_list_price"], acme["at_risk_cost"]) == ("0.00", "0")


def test_the_report_over_the_api(operator, late):
    scan(operator)

    response = operator.get("/api/v1/leakage/report", {"period": "2026-10", "tenant": "acme"})

    assert response.status_code == 200
    body = response.json()
    assert [t["tenant"] for t in body["tenants"]] == ["acme"]
    assert body["tenants"][0]["at_risk_list_price"] == "0.50"
    missing = operator.get("/api/v1/leakage/report")
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "period"


def test_the_report_is_cached_but_its_amounts_at_risk_are_live(
    operator, late, settings, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    cache.clear()
    settings.PERCALL_LEAKAGE_REPORT_CACHE_SECONDS = 300
    leakage_scan(period_start=OCTOBER)
    first = leakage_report(period_start=OCTOBER)
    assert first["tenants"][0]["at_risk_list_price"] == "0.50"

    # Given 3 more calls after the invoice (3 x 0.10 more billable), the cached report does not
    # see them yet, but resolving the finding shows at once
    send(calls(3, day=30))
    finding = Finding.objects.get(category="late_unbilled")
    operator.post(f"/api/v1/leakage/findings/{finding.id}/resolve", {"reason": "billed"})
    cached = leakage_report(period_start=OCTOBER)
    assert cached["computed_at"] == first["computed_at"]
    assert cached["tenants"][0]["billable_amount"] == "4.50"
    assert cached["tenants"][0]["at_risk_list_price"] == "0.00"

    # Then the month's next scan, once committed, makes the report compute afresh:
    # calls (38 - 10) x 0.10 = 2.80 + tokens 2.00 = 4.80
    with django_capture_on_commit_callbacks(execute=True):
        leakage_scan(period_start=OCTOBER)
    fresh = leakage_report(period_start=OCTOBER)
    assert fresh["tenants"][0]["billable_amount"] == "4.80"
    assert fresh["tenants"][0]["events"]["stored"] == 40
    cache.clear()


@pytest.mark.parametrize("period", ["9999-12", "0001-01"])
def test_a_month_without_a_neighbour_is_a_400_not_an_overflow(make_key, api, period):
    """The report and a scan read the month after (its end): the last and first years of the
    calendar are refused naming the period."""
    operator = api(make_key())

    report = operator.get(f"/api/v1/leakage/report?period={period}")
    scan = operator.post("/api/v1/leakage/scans", {"period": period})

    for response in (report, scan):
        assert response.status_code == 400
        assert response.json()["error"]["field"] == "period"
        assert "out of range" in response.json()["error"]["message"]
