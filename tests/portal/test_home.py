"""The home page: this period's usage, the running invoice, credits, budgets, endpoints."""

import json
from html import unescape

from tests.billing.billing_setup import event, send
from tests.portal.conftest import NOW, assert_no_beta

__all__ = ["NOW"]


def _figure(text: str, name: str) -> str:
    start = text.index(f'data-figure="{name}">') + len(f'data-figure="{name}">')
    return text[start : text.index("<", start)]


def test_home_shows_this_periods_figures(world, as_user):
    response = as_user(world.owner).get("/portal/")
    text = response.content.decode()
    assert response.status_code == 200
    assert "<title>Home · Alpha Labs · Percall</title>" in text
    # 4 search calls + 2 chat calls + 1 llm call in November
    assert _figure(text, "calls") == "7"
    # base fee 99.00 + 1,000,000 gpt-4o tokens x 2.50 per 1M = 2.50 + calls: 6 - 5 free = 1
    # unit, one package of 10 at 0.50 = 102.00; credits left 200.00 - October's 109.00 = 91.00
    # are applied: 102.00 - 91.00 = 11.00
    assert _figure(text, "running") == "11.00 USD"
    assert "102.00 USD" in text and "\u221291.00 USD" in text
    assert _figure(text, "credits") == "91.00 USD"
    # 109.00 of 200.00 consumed = 54.50 %; burn 109.00 / 30 days = 3.6333 a day; 91.00 / 3.6333
    # = 25.05 -> 26 days after 20 Nov = 16 Dec
    assert "54.50 % consumed" in text and "runs out about 16 Dec 2026" in text
    # calls budget of 8: 6 api calls = 75.00 %, past the 70 % threshold
    assert "75.00 %" in text and '<span class="badge warn">past 70 %</span>' in text
    assert text.index('/v1/search</td><td class="num">4') < text.index("/v1/chat</td>")
    assert_no_beta(response, world)


def test_home_chart_carries_daily_calls_by_feature(world, as_user):
    text = as_user(world.viewer).get("/portal/").content.decode()
    canvas = text[text.index("<canvas") : text.index("</canvas>")]
    labels = json.loads(unescape(canvas.split('data-labels="')[1].split('"')[0]))
    series = json.loads(unescape(canvas.split('data-series="')[1].split('"')[0]))
    assert labels == ["2026-11-18", "2026-11-19"]
    assert series == [
        {"label": "search", "data": [4, 0]},
        {"label": "chat", "data": [0, 3]},  # 2 api calls + 1 llm call on the 19th
    ]


def test_home_charts_daily_usage_by_meter(world, as_user):
    text = as_user(world.viewer).get("/portal/").content.decode()
    start = text.index("data-meter-chart")
    canvas = text[start : text.index("</canvas>", start)]
    labels = json.loads(unescape(canvas.split('data-labels="')[1].split('"')[0]))
    series = json.loads(unescape(canvas.split('data-series="')[1].split('"')[0]))
    assert labels == ["2026-11-18", "2026-11-19"]
    # calls (count): 4 on the 18th, 2 on the 19th; tokens (sum of input tokens): 1,000,000
    # on the 19th; units (job.run) had none in November; the unique-count and latest
    # meters are not summed per day
    assert series == [
        {"label": "tokens", "data": [0, 1000000]},
        {"label": "calls", "data": [4, 2]},
    ]


def test_home_queries_do_not_grow_with_usage(world, as_user, django_assert_max_num_queries):
    client = as_user(world.owner)
    with django_assert_max_num_queries(21):
        client.get("/portal/")
    send(
        *(
            event(
                "alpha",
                "api.call",
                f"2026-11-{d:02d}T08:00:00Z",
                feature=f"f{d}",
                endpoint=f"/e{d}",
            )
            for d in range(2, 18)
        )
    )
    with django_assert_max_num_queries(21):
        text = client.get("/portal/").content.decode()
    assert '"f17"' in unescape(text)
