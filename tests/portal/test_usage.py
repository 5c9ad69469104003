"""The usage explorer: filters, grouping, chart data and CSV."""

import csv
import io
import json
from html import unescape

from tests.billing.billing_setup import event, send
from tests.portal.conftest import NOW, assert_no_beta

__all__ = ["NOW"]

NOV = {"start": "2026-11-01", "end": "2026-11-20"}


def _series(text: str) -> list:
    return json.loads(unescape(text.split('data-series="')[1].split('"')[0]))


def test_the_month_so_far_by_default(world, as_user):
    response = as_user(world.viewer).get("/portal/usage/")
    text = response.content.decode()
    assert response.status_code == 200 and "<title>Usage · Alpha Labs · Percall</title>" in text
    # every November event in one series: 4 on the 18th, 2 api + 1 llm call on the 19th
    assert _series(text) == [{"label": "all", "data": [4, 3]}]
    assert_no_beta(response, world)


def test_filter_by_feature_and_group_by_endpoint(world, as_user):
    query = {**NOV, "feature": "chat", "group_by": "event_type"}
    text = as_user(world.viewer).get("/portal/usage/", query).content.decode()
    assert _series(text) == [
        {"label": "api.call", "data": [2]},
        {"label": "llm.call", "data": [1]},
    ]


def test_a_meter_measures_what_it_counts(world, as_user):
    # the tokens meter sums input_tokens of llm calls: 1,000,000 on the 19th
    query = {**NOV, "meter": "tokens", "measure": "events"}
    text = as_user(world.viewer).get("/portal/usage/", query).content.decode()
    assert _series(text) == [{"label": "all", "data": [1000000]}]
    assert "1,000,000" in text


def test_bad_dates_name_the_field(world, as_user):
    response = as_user(world.viewer).get(
        "/portal/usage/", {"start": "2026-11-10", "end": "2026-11-01"}
    )
    assert response.status_code == 400
    assert "To: must be on or after From." in response.content.decode()
    csv_answer = as_user(world.viewer).get("/portal/usage.csv", {"start": "nope", "end": "x"})
    assert csv_answer.status_code == 400 and b"start" in csv_answer.content


def test_a_foreign_feature_filter_finds_nothing(world, as_user):
    query = {**NOV, "feature": "beta-secret-feature"}
    response = as_user(world.viewer).get("/portal/usage/", query)
    # not one of alpha's features: refused as a choice, no beta figure shown
    assert response.status_code == 400
    assert_no_beta(response, world)


def test_csv_download(world, as_user):
    response = as_user(world.viewer).get("/portal/usage.csv", {**NOV, "group_by": "endpoint"})
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="usage-alpha-20261101.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [
        ["day", "endpoint", "measure", "value"],
        ["2026-11-18", "/v1/search", "events", "4"],
        ["2026-11-19", "/v1/search", "events", "0"],
        ["2026-11-18", "/v1/chat", "events", "0"],
        ["2026-11-19", "/v1/chat", "events", "3"],
    ]


def test_csv_quotes_what_a_spreadsheet_would_run(world, as_user):
    send(event("alpha", "api.call", "2026-11-18T12:00:00Z", feature="=HYPERLINK(1)"))
    response = as_user(world.viewer).get("/portal/usage.csv", {**NOV, "group_by": "feature"})
    assert "'=HYPERLINK(1)" in response.content.decode()


def test_queries_do_not_grow_with_usage(world, as_user, django_assert_max_num_queries):
    client = as_user(world.viewer)
    query = {**NOV, "group_by": "feature"}
    with django_assert_max_num_queries(9):
        client.get("/portal/usage/", query)
    send(
        *(
            event("alpha", "api.call", f"2026-11-{d:02d}T08:00:00Z", feature=f"f{d}")
            for d in range(2, 18)
        )
    )
    with django_assert_max_num_queries(9):
        assert "f17" in client.get("/portal/usage/", query).content.decode()
