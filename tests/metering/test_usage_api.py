"""GET /api/v1/usage: series from hourly rollups, grouped, by UTC hour or tenant-local day."""

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from apps.metering.services.rollup import rollup_pending_run
from apps.tenants.models import Tenant
from tests.metering.ingesting import ingest_events

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
URL = "/api/v1/usage"
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


def ingest_and_roll_up(*events: dict) -> None:
    result = ingest_events(*events)
    assert result.accepted == len(events), result.results
    rollup_pending_run()


def call(event_id: str, at: str, tenant: str = "acme", **attributes) -> dict:
    return {"id": event_id, "tenant": tenant, "type": "api.call", "timestamp": at, **attributes}


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def decimal_string(value) -> Decimal:
    """Decimals travel as JSON strings, never as numbers."""
    assert isinstance(value, str), value
    return Decimal(value)


@pytest.fixture
def traffic(make_tenant):
    """acme: two endpoints over hours 10 and 11; globex: one call in hour 10."""
    make_tenant("acme")
    make_tenant("globex")
    ingest_and_roll_up(
        call("a1", "2026-11-20T10:05:00Z", endpoint="/chat", feature="chat", cost="0.000002"),
        call("a2", "2026-11-20T10:35:00Z", endpoint="/chat", feature="chat", cost="0.000002"),
        call("a3", "2026-11-20T10:45:00Z", endpoint="/embed", feature="search", cost="0.000002"),
        call("a4", "2026-11-20T11:15:00Z", endpoint="/chat", feature="chat", latency_ms="12.5"),
        call("g1", "2026-11-20T10:10:00Z", tenant="globex", endpoint="/chat", input_tokens=7),
    )


def test_hourly_usage_grouped_by_endpoint(traffic, make_key, api):
    # given a read key; when acme's usage for hours 10 and 11 is asked by endpoint
    response = api(make_key()).get(
        URL,
        {
            "tenant": "acme",
            "from": "2026-11-20T10:00:00Z",
            "to": "2026-11-20T12:00:00Z",
            "group_by": "endpoint",
            "granularity": "hour",
        },
    )

    # then one row per hour, endpoint and cost currency, oldest first
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["tenant"], body["granularity"], body["group_by"]) == ("acme", "hour", ["endpoint"])
    got = [
        (instant(r["start"]), r["endpoint"], r["cost_currency"], r["events"], r["cost"])
        for r in body["data"]
    ]
    h10, h11 = datetime(2026, 11, 20, 10, tzinfo=UTC), datetime(2026, 11, 20, 11, tzinfo=UTC)
    assert [(s, e, c, n) for s, e, c, n, _ in got] == [
        (h10, "/chat", "USD", 2),
        (h10, "/embed", "USD", 1),
        (h11, "/chat", "", 1),
    ]
    assert decimal_string(got[0][4]) == Decimal("0.000004")  # 0.000002 x 2
    assert decimal_string(got[1][4]) == Decimal("0.000002")
    last = body["data"][2]
    assert decimal_string(last["latency_ms_sum"]) == Decimal("12.5")
    assert decimal_string(last["latency_ms_max"]) == Decimal("12.5")
    assert decimal_string(last["credits"]) == Decimal("0")
    assert isinstance(last["events"], int)


def test_groups_combine_and_the_range_is_half_open(traffic, make_key, api):
    # when only hour 10 is asked ([10:00, 11:00)), by feature and endpoint
    response = api(make_key()).get(
        URL,
        {
            "tenant": "acme",
            "from": "2026-11-20T10:00:00Z",
            "to": "2026-11-20T11:00:00Z",
            "group_by": "feature,endpoint",
        },
    )

    # then hour 11 is left out, and each (feature, endpoint) is a row
    assert response.status_code == 200, response.content
    rows = [(r["feature"], r["endpoint"], r["events"]) for r in response.json()["data"]]
    assert rows == [("chat", "/chat", 2), ("search", "/embed", 1)]


def test_daily_usage_follows_the_tenant_timezone(make_tenant, make_key, api):
    # given a Tokyo tenant and a UTC tenant with calls at 14:30Z and 15:30Z on Nov 10,
    # which are 23:30 on Nov 10 and 00:30 on Nov 11 in Tokyo (UTC+9)
    make_tenant("tokyo", timezone_name="Asia/Tokyo")
    make_tenant("london", timezone_name="UTC")
    ingest_and_roll_up(
        *(
            call(f"{t}-{n}", at, tenant=t)
            for t in ("tokyo", "london")
            for n, at in enumerate(("2026-11-10T14:30:00Z", "2026-11-10T15:30:00Z"))
        )
    )
    client = api(make_key())
    params = {"from": "2026-11-09T00:00:00Z", "to": "2026-11-12T00:00:00Z", "granularity": "day"}

    # when each tenant's daily usage is asked
    tokyo = client.get(URL, params | {"tenant": "tokyo"})
    london = client.get(URL, params | {"tenant": "london"})

    # then Tokyo has two local days of one call each, London one day of two
    assert tokyo.status_code == london.status_code == 200
    assert tokyo.json()["data"][0]["start"] == "2026-11-10T00:00:00+09:00"  # local midnight
    jst = ZoneInfo("Asia/Tokyo")
    assert [(instant(r["start"]), r["events"]) for r in tokyo.json()["data"]] == [
        (datetime(2026, 11, 10, tzinfo=jst), 1),
        (datetime(2026, 11, 11, tzinfo=jst), 1),
    ]
    assert [(instant(r["start"]), r["events"]) for r in london.json()["data"]] == [
        (datetime(2026, 11, 10, tzinfo=UTC), 2)
    ]


def test_an_operator_key_without_tenant_sums_all_tenants(traffic, make_key, api):
    client = api(make_key(scopes=("read",)))
    params = {"from": "2026-11-20T10:00:00Z", "to": "2026-11-20T11:00:00Z"}

    # when no tenant is given
    total = client.get(URL, params | {"group_by": "endpoint"})
    by_tenant = client.get(URL, params | {"group_by": "tenant"})

    # then hour 10 of acme (3 calls) and globex (1 call) add up
    assert total.status_code == by_tenant.status_code == 200
    assert total.json()["tenant"] is None
    rows = [(r["endpoint"], r["cost_currency"], r["events"]) for r in total.json()["data"]]
    assert rows == [("/chat", "", 1), ("/chat", "USD", 2), ("/embed", "USD", 1)]
    tenants = [(r["tenant"], r["events"], r["input_tokens"]) for r in by_tenant.json()["data"]]
    assert tenants == [("acme", 3, 0), ("globex", 1, 7)]


def test_a_tenant_key_reads_only_its_own_tenant(traffic, make_key, api):
    client = api(make_key(scopes=("read",), tenant=Tenant.objects.get(external_id="globex")))
    params = {"from": "2026-11-20T10:00:00Z", "to": "2026-11-20T12:00:00Z"}

    own = client.get(URL, params)
    foreign = client.get(URL, params | {"tenant": "acme"})

    assert own.status_code == 200
    assert own.json()["tenant"] == "globex"
    assert [r["events"] for r in own.json()["data"]] == [1]
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "tenant_not_found"


def test_a_key_without_read_scope_is_refused(traffic, make_key, api):
    response = api(make_key(scopes=("ingest",))).get(
        URL, {"from": "2026-11-20T10:00:00Z", "to": "2026-11-20T11:00:00Z"}
    )
    assert response.status_code == 403


def test_exactly_400_days_is_allowed(make_tenant, make_key, api):
    make_tenant("acme")
    response = api(make_key()).get(
        URL, {"tenant": "acme", "from": "2025-10-16T00:00:00Z", "to": "2026-11-20T00:00:00Z"}
    )
    assert response.status_code == 200, response.content
    assert response.json()["data"] == []


GOOD = {"tenant": "acme", "from": "2026-11-20T10:00:00Z", "to": "2026-11-20T11:00:00Z"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"from": None}, "from", id="missing-from"),
        pytest.param({"to": None}, "to", id="missing-to"),
        pytest.param({"from": "yesterday"}, "from", id="not-iso"),
        pytest.param({"from": "2026-11-20T10:00:00"}, "from", id="naive-from"),
        pytest.param({"to": "2026-11-20T11:00:00"}, "to", id="naive-to"),
        pytest.param({"to": "2026-11-20T10:00:00Z"}, "to", id="to-equals-from"),
        pytest.param({"to": "2026-11-20T09:00:00Z"}, "to", id="to-before-from"),
        pytest.param(
            {"from": "2025-10-16T00:00:00Z", "to": "2026-11-20T00:00:01Z"},
            "to",
            id="over-400-days",
        ),
        pytest.param({"group_by": "endpoint,colour"}, "group_by", id="unknown-group-by"),
        pytest.param({"granularity": "week"}, "granularity", id="bad-granularity"),
    ],
)
def test_a_bad_query_is_a_400_naming_the_field(make_tenant, make_key, api, params, field):
    # given a query with one bad parameter
    make_tenant("acme")
    query = {k: v for k, v in (GOOD | params).items() if v is not None}

    # when it is sent
    response = api(make_key()).get(URL, query)

    # then the error names the field, and its message starts with it
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["field"] == field
    assert error["message"].startswith(f"{field}:")


def test_an_offset_other_than_utc_is_accepted(traffic, make_key, api):
    # 11:00+01:00 is 10:00Z: the window is hour 10 only
    response = api(make_key()).get(
        URL,
        {"tenant": "acme", "from": "2026-11-20T11:00:00+01:00", "to": "2026-11-20T12:00:00+01:00"},
    )
    assert response.status_code == 200, response.content
    assert sum(r["events"] for r in response.json()["data"]) == 3


@pytest.mark.parametrize(
    "query",
    [
        "from=2026-10-01T00:00:00Z&to=9999-12-31T23:00:00-05:00",
        "from=0001-01-01T00:00:00%2B14:00&to=2026-10-02T00:00:00Z",
    ],
)
def test_a_time_past_the_representable_range_in_utc_is_a_400(make_tenant, make_key, api, query):
    """A valid ISO 8601 time whose offset takes it past year 9999 (or before year 1) in UTC
    names the parameter instead of overflowing."""
    make_tenant("acme")

    response = api(make_key()).get(f"/api/v1/usage?tenant=acme&{query}")

    assert response.status_code == 400
    assert "out of range in UTC" in response.json()["error"]["message"]
