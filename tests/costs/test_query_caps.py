"""Analytics query caps: at most 3 group_by dimensions, at most PERCALL_ANALYTICS_MAX_GROUPS
groups in an answer (refused naming ``group_by``, never truncated), periods of at most 366
days (refused naming ``period``), and group_by names only from the allowlist."""

from datetime import UTC, date, datetime

import pytest

from apps.costs.errors import AnalyticsQueryInvalid
from apps.costs.models import CostRollup
from apps.costs.selectors import CostPeriod, group_by_parse, workflow_runs
from tests.costs import traffic as t

NOW = datetime(2026, 11, 2, tzinfo=UTC)
URL = "/api/v1/analytics/cost"
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
OCTOBER = CostPeriod(date(2026, 10, 1), date(2026, 11, 1))


@pytest.fixture
def tenants(make_tenant):
    return t.traffic_send(make_tenant)


@pytest.fixture
def operator(api, make_key):
    return api(make_key(scopes=("read",)))


def refusal(response, field):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("analytics_query_invalid", field)
    return error["message"]


# --- dimensions and the allowlist ------------------------------------------------------------


def test_three_dimensions_are_allowed_and_four_are_refused(tenants, operator):
    ok = operator.get(URL, {"period": "2026-10", "group_by": "tenant,feature,model"})
    assert ok.status_code == 200, ok.content

    message = refusal(
        operator.get(URL, {"period": "2026-10", "group_by": "tenant,feature,model,provider"}),
        "group_by",
    )
    assert "4 dimensions" in message and "at most 3" in message


@pytest.mark.parametrize(
    "group_by",
    [
        "tenant_id) FROM costs_costrollup; --",
        "feature; DROP TABLE metering_event",
        'model" OR 1=1 --',
        "cost",  # a real column, but not a dimension
        "tenant__name",  # an ORM lookup path
    ],
)
def test_a_group_by_outside_the_allowlist_is_refused_naming_the_field(tenants, operator, group_by):
    rows_before = CostRollup.objects.count()

    message = refusal(operator.get(URL, {"period": "2026-10", "group_by": group_by}), "group_by")

    assert "is not one of" in message or "groups by" in message
    assert CostRollup.objects.count() == rows_before


def test_the_dimension_cap_is_a_setting(settings):
    settings.PERCALL_ANALYTICS_MAX_DIMENSIONS = 1

    assert group_by_parse("tenant") == ("tenant",)
    with pytest.raises(AnalyticsQueryInvalid) as error:
        group_by_parse("tenant,feature")
    assert error.value.field == "group_by"


# --- result cardinality ----------------------------------------------------------------------


def test_an_answer_within_the_group_cap_is_whole(tenants, operator, settings):
    settings.PERCALL_ANALYTICS_MAX_GROUPS = 2  # October has two tenants: acme and globex

    response = operator.get(URL, {"period": "2026-10", "group_by": "tenant"})

    assert response.status_code == 200, response.content
    assert len(response.json()["rows"]) == 2


def test_more_groups_than_the_cap_is_refused_not_truncated(tenants, operator, settings):
    settings.PERCALL_ANALYTICS_MAX_GROUPS = 1

    message = refusal(operator.get(URL, {"period": "2026-10", "group_by": "tenant"}), "group_by")

    assert "more than 1 groups" in message


def test_the_daily_series_is_capped_by_groups_too(tenants, operator, settings):
    settings.PERCALL_ANALYTICS_MAX_GROUPS = 1

    response = operator.get(
        "/api/v1/analytics/marginal_cost", {"period": "2026-10", "group_by": "tenant"}
    )

    refusal(response, "group_by")


def test_workflow_runs_are_capped_by_groups_too(tenants, settings):
    # October's runs are all acme's "support" workflow: one group.
    assert len(workflow_runs(period=OCTOBER, group_by=("workflow",))) == 1

    with pytest.raises(AnalyticsQueryInvalid) as error:
        workflow_runs(period=OCTOBER, group_by=("workflow",), max_groups=0)
    assert error.value.field == "group_by"


def test_internal_readers_are_not_capped(tenants, settings):
    # the leakage scan and the forecasts read every tenant: only analytics answers are capped
    settings.PERCALL_ANALYTICS_MAX_GROUPS = 1
    from apps.costs.selectors import cost_daily, cost_totals

    assert len(cost_totals(period=OCTOBER, group_by=("tenant",))) == 2
    assert len(cost_daily(period=OCTOBER, group_by=("tenant",))) == 2


# --- date ranges -----------------------------------------------------------------------------


def test_a_period_of_366_days_is_allowed(tenants, operator):
    # 2026-01-01 .. 2027-01-02 (end exclusive): 365 days of 2026 + 1 = 366
    response = operator.get(URL, {"period": "2026-01-01..2027-01-02"})

    assert response.status_code == 200, response.content


def test_a_period_over_366_days_is_refused_naming_period(tenants, operator):
    # 2026-01-01 .. 2027-01-03: 367 days
    message = refusal(operator.get(URL, {"period": "2026-01-01..2027-01-03"}), "period")

    assert "366 days" in message
