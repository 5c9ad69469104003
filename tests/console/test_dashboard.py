"""The API-program dashboard for October 2026 on the fixture of ``program_setup``: every
figure worked out by hand, and a query count that does not grow with the partners."""

import html
import json
import re

import pytest

from apps.billing.services.runs import billing_run
from tests.assurance.leakage_setup import BILLED_AT, RECEIVED, calls, send, subscribe
from tests.console.program_setup import NOW

__all__ = ["NOW"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


def figure(body: str, name: str) -> str:
    found = re.search(rf'data-figure="{name}">([^<]*)<', body)
    assert found, name
    return found.group(1).strip()


def chart(body: str, label: str) -> tuple[list, list]:
    found = re.search(
        rf'aria-label="{label}"[^>]*data-labels="([^"]*)" data-series="([^"]*)"', body
    )
    assert found, label
    return json.loads(html.unescape(found.group(1))), json.loads(html.unescape(found.group(2)))


def test_adoption_counts_registered_and_active_partners_with_growth(finance, program):
    body = finance.get("/console/?period=2026-10").content.decode()

    # registered by 31 October: acme, globex, initech (later registered in November)
    assert figure(body, "registered") == "3"
    # active (a successful call in October): acme and globex; initech never called
    assert figure(body, "active") == "2"
    # September: acme alone registered and active: (3 - 1) / 1 = +200 %, (2 - 1) / 1 = +100 %
    assert "+200.0 % on 1 last month" in body
    assert "+100.0 % on 1 last month" in body
    # acme: 20 Sep 00:00 -> 25 Sep 12:00 = 5.5 days; globex: 10 Oct 00:00 -> 12 Oct 12:00 =
    # 2.5 days; median (5.5 + 2.5) / 2 = 4.0
    assert figure(body, "median-days") == "4.0"
    assert "1 partner never called" in body


def test_partner_growth_is_charted_over_six_months(finance, program):
    body = finance.get("/console/?period=2026-10").content.decode()

    labels, series = chart(body, "Registered and active partners by month")

    assert labels == ["2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10"]
    assert series == [
        {"label": "Registered partners", "data": [0, 0, 0, 0, 1, 3]},
        {"label": "Active partners", "data": [0, 0, 0, 0, 1, 2]},
    ]


def test_call_volume_is_charted_per_partner_per_day(finance, program):
    body = finance.get("/console/?period=2026-10").content.decode()

    days, series = chart(body, "API calls per day by partner")

    assert len(days) == 31 and days[4] == "2026-10-05"
    acme, globex = [0] * 31, [0] * 31
    acme[4] = 30 + 2  # 30 calls and 2 LLM calls on 5 October
    globex[11] = 4  # 12 October, the failed one included
    assert series == [{"label": "acme", "data": acme}, {"label": "globex", "data": globex}]


def test_endpoints_are_ranked_by_calls_with_failures_and_partners(finance, program):
    body = finance.get("/console/?period=2026-10").content.decode()

    rows = re.findall(
        r'<tr><td>(/v1/\w+)</td><td class="num">(\d+)</td><td class="num">(\d+)</td>'
        r'<td class="num">(\d+)</td></tr>',
        body,
    )
    # /v1/search: acme 30 + globex 4 = 34 calls, 1 failed, 2 partners; /v1/chat: acme's 2
    assert rows == [("/v1/search", "34", "1", "2"), ("/v1/chat", "2", "0", "1")]


def test_revenue_per_partner_plan_and_meter(finance, program):
    body = finance.get("/console/?period=2026-10").content.decode()

    # acme: base 50.00 + (30 - 10 free) x 0.10 = 2.00 + 2,000 tokens x 0.001 = 2.00 = 54.00
    # globex: base 5.00 + 4 free calls = 5.00
    assert '<td>acme</td><td class="num">54.00 USD</td>' in body
    assert '<td>globex</td><td class="num">5.00 USD</td>' in body
    assert '<td>Standard</td><td class="num">54.00 USD</td>' in body
    assert '<td>Starter</td><td class="num">5.00 USD</td>' in body
    # base fees 50.00 + 5.00; calls 2.00 + 0.00; tokens 2.00
    assert '<td>base fee</td><td class="num">55.00 USD</td>' in body
    assert '<td>calls</td><td class="num">2.00 USD</td>' in body
    assert '<td>tokens</td><td class="num">2.00 USD</td>' in body


def test_program_cost_against_revenue(finance, program):
    body = finance.get("/console/?period=2026-10").content.decode()

    # revenue 54.00 + 5.00 = 59.00; cost: acme 30 x 0.01 + 2 x 0.05 = 0.40, globex 4 x 0.01
    # = 0.04, 0.44 in all (acme's September call is not October's)
    assert figure(body, "revenue") == "59.00 USD"
    assert figure(body, "cost") == "0.44 USD"
    # 59.00 - 0.44 = 58.56, 58.56 / 59.00 = 99.25 %
    assert figure(body, "margin") == "58.56 USD (99.3 %)"
    # 36 calls: 0.44 x 1000 / 36 = 12.2222; 59.00 x 1000 / 36 = 1638.8889
    assert "12.2222 USD" in body and "1638.8889 USD" in body


def test_accuracy_is_loaded_after_the_page(finance, program):
    body = finance.get("/console/?period=2026-10").content.decode()
    assert 'hx-get="/console/accuracy/?period=2026-10"' in body

    card = finance.get("/console/accuracy/?period=2026-10").content.decode()

    # October's usage was billed exactly: acme 4.00 of 4.00 billable, globex's calls free
    assert figure(card, "accuracy") == "100.00 %"


def test_the_default_month_is_the_last_closed_one(finance, program):
    body = finance.get("/console/").content.decode()

    assert "<title>API program 2026-10 · Percall</title>" in body


def test_a_bad_month_is_a_400_naming_the_field(finance, db):
    response = finance.get("/console/?period=2026-13")

    assert response.status_code == 400
    assert "Month: &#x27;2026-13&#x27; is not a month as YYYY-MM" in response.content.decode()


def test_the_query_count_does_not_grow_with_partners(
    finance, program, make_tenant, django_assert_max_num_queries
):
    with django_assert_max_num_queries(15) as few:
        finance.get("/console/?period=2026-10")
    for name in ("p1", "p2", "p3", "p4", "p5"):
        subscribe(make_tenant(name), "std")
        send(calls(3, tenant=name, day=7), at=RECEIVED)
    billing_run(as_of=BILLED_AT)

    with django_assert_max_num_queries(len(few.captured_queries)):
        body = finance.get("/console/?period=2026-10").content.decode()
    assert figure(body, "active") == "7"
