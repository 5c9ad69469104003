"""Cost intelligence in the console on the cost tests' traffic (``tests.costs.traffic``):
a metric by partner with the change on September, margins, a bad grouping, and a forecast
with its band."""

import re
from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from apps.alerts.models import ForecastSnapshot
from tests.costs import traffic as t

NOW = datetime(2026, 11, 2, tzinfo=UTC)
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture
def traffic(make_tenant):
    return t.traffic_send(make_tenant)


def cells(body: str, label: str) -> list[str]:
    row = re.search(rf"<tr><td>{label}</td>(.*?)</tr>", body, re.S)
    assert row, label
    return re.findall(r'<td class="num"[^>]*>([^<]*)</td>', row.group(1))


def test_cost_by_partner_with_the_change_on_the_previous_month(finance, traffic):
    body = finance.get("/console/costs/?period=2026-10&metric=cost&group_by=tenant").content
    body = body.decode()

    assert "<title>Cost intelligence 2026-10 · Percall</title>" in body
    acme = t.ACME_DAY1 + t.ACME_DAY2
    assert acme == D("0.16685")  # shown to 4 places, half up: 0.1669
    september = t.S1 + t.S2 + t.S3 + t.S4
    assert september == D("0.1134")
    # 0.16685 / 0.1134 - 1 = 0.47134... = +47.1 %
    assert cells(body, "Acme")[:3] == ["0.1669", "0.1134", "+47.1 %"]
    assert cells(body, "Globex")[:3] == ["0.0280", "\u2013", "\u2013"]  # G1, nothing before


def test_margin_by_customer_is_revenue_less_cost(finance, traffic):
    body = finance.get("/console/costs/?period=2026-10&metric=margin&group_by=tenant").content
    body = body.decode()

    # no subscriptions, no revenue: the margin is minus the cost, -G1 = -0.028
    assert cells(body, "Globex")[0] == "-0.0280"
    assert 'href="?period=2026-10&amp;metric=margin&amp;group_by=feature"' in body


def test_the_metric_chart_has_this_month_and_the_last(finance, traffic):
    body = finance.get("/console/costs/?period=2026-10&metric=cost&group_by=tenant").content
    body = body.decode()

    assert 'data-chart="bar"' in body
    assert "&quot;label&quot;: &quot;2026-10&quot;" in body
    assert "&quot;label&quot;: &quot;2026-09&quot;" in body


def test_a_grouping_the_metric_does_not_allow_is_a_400_naming_the_field(finance, traffic):
    response = finance.get("/console/costs/?period=2026-10&metric=margin&group_by=model")

    assert response.status_code == 400
    assert "Group by: group_by: margin groups by tenant and/or feature" in response.content.decode()


def test_a_forecast_is_shown_with_its_band_and_flagged_when_missed(finance, db):
    ForecastSnapshot.objects.create(
        scope="total", scope_key="", measure="cost", currency="USD",
        period_start=date(2026, 10, 1), period_end=date(2026, 11, 1), made_on=date(2026, 10, 20),
        actual_to_date=D("60"), forecast=D("100"), lower=D("90"), upper=D("110"),
        method="run_rate", actual=D("120"),
    )  # fmt: skip

    body = finance.get("/console/costs/?period=2026-10").content.decode()

    assert 'data-figure="forecast">100.00 USD<' in body
    assert "90.00 USD \u2013 110.00 USD" in body
    assert '120.00 USD <span class="badge over">outside</span>' in body  # 120 > 110
    assert "No anomalies this month." in body


def test_the_page_query_count_is_bounded(finance, traffic, django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        finance.get("/console/costs/?period=2026-10&metric=cost&group_by=tenant")
