"""Fixed-window rate counters and the per-API-key request rate: 429 with ``Retry-After`` (the
seconds left in the minute), a budget per key, a fresh budget in the next window."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache

from apps.core import ratelimit
from apps.core.ratelimit import rate_consume, rate_key, rates_consume

# 15 s into a minute: the window [12:00:00, 12:01:00) has 45 s left.
NOW = datetime(2026, 11, 20, 12, 0, 15, tzinfo=UTC)
URL = "/api/v1/tenants"


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def consume(key="k", limit=3, cost=1):
    return rate_consume(key=rate_key(key), limit=limit, window_seconds=60, cost=cost)


# --- the counter -----------------------------------------------------------------------------


def test_a_budget_allows_its_limit_then_refuses_with_the_seconds_left(clock):
    answers = [consume() for _ in range(4)]

    assert [(a.allowed, a.remaining) for a in answers] == [
        (True, 2),
        (True, 1),
        (True, 0),
        (False, 0),
    ]
    assert answers[3].retry_after == 45  # 12:01:00 - 12:00:15
    assert answers[0].retry_after == 0


def test_retry_after_rounds_up_part_seconds(clock):
    clock.move_to(datetime(2026, 11, 20, 12, 0, 59, 500000, tzinfo=UTC))
    consume(limit=1)

    assert consume(limit=1).retry_after == 1  # 0.5 s left: wait 1 s, never 0


def test_the_window_resets_after_its_seconds(clock):
    for _ in range(3):
        consume()
    assert not consume().allowed

    clock.shift(timedelta(seconds=44))  # 12:00:59: still the same window
    assert not consume().allowed
    clock.shift(timedelta(seconds=1))  # 12:01:00: a new window, the whole budget again

    assert [consume().allowed for _ in range(4)] == [True, True, True, False]


def test_two_keys_have_separate_budgets(clock):
    for _ in range(3):
        consume("a")

    assert not consume("a").allowed
    assert consume("b").allowed


def test_a_charge_over_the_limit_is_refused_and_costs_nothing(clock):
    assert consume(limit=10, cost=8).allowed

    refused = consume(limit=10, cost=3)  # 8 + 3 > 10

    assert (refused.allowed, refused.remaining) == (False, 2)
    assert consume(limit=10, cost=2).allowed  # the refused 3 were not kept: 8 + 2 = 10


def test_several_budgets_are_charged_all_or_nothing(clock):
    a, b = rate_key("a"), rate_key("b")
    assert rate_consume(key=b, limit=5, window_seconds=60, cost=4).allowed

    refused = rates_consume(costs={a: 2, b: 2}, limit=5, window_seconds=60)  # b: 4 + 2 > 5

    assert not refused.allowed
    # a was charged 2 then refunded: all 5 are still there; b still has 1.
    assert rate_consume(key=a, limit=5, window_seconds=60, cost=5).allowed
    assert rate_consume(key=b, limit=5, window_seconds=60, cost=1).allowed


def test_an_unreachable_cache_lets_calls_through(clock, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(ratelimit.cache, "add", broken)

    assert consume(limit=1).allowed
    assert consume(limit=1).allowed


def test_budget_keys_are_hashed_so_caller_text_never_reaches_the_cache_verbatim():
    key = rate_key("ingest-tenant", "acme corp\n" + "x" * 500)

    assert key.startswith("rate:") and len(key) == len("rate:") + 32


# --- the per-key request rate on the API -------------------------------------------------


@pytest.fixture
def two_keys(make_key, settings):
    settings.PERCALL_RATE_KEY_PER_MINUTE = 2
    return make_key(scopes=("admin", "read")), make_key(scopes=("admin", "read"))


def test_a_key_over_its_rate_gets_a_429_with_retry_after(api, two_keys, clock):
    first, _ = two_keys
    caller = api(first)

    statuses = [caller.get(URL).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    refused = caller.get(URL)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "45"  # 12:01:00 - 12:00:15
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert "2 requests a minute" in error["message"]
    assert "retry in 45 s" in error["message"]
    assert first not in refused.content.decode()  # the key never appears in an error body


def test_another_key_keeps_its_own_budget(api, two_keys, clock):
    first, second = two_keys
    for _ in range(2):
        api(first).get(URL)
    assert api(first).get(URL).status_code == 429

    assert api(second).get(URL).status_code == 200


def test_the_key_may_call_again_in_the_next_minute(api, two_keys, clock):
    first, _ = two_keys
    for _ in range(2):
        api(first).get(URL)
    assert api(first).get(URL).status_code == 429

    clock.shift(timedelta(seconds=45))

    assert api(first).get(URL).status_code == 200


def test_zero_turns_the_per_key_rate_off(api, make_key, settings, clock):
    settings.PERCALL_RATE_KEY_PER_MINUTE = 0
    caller = api(make_key(scopes=("admin", "read")))

    assert {caller.get(URL).status_code for _ in range(5)} == {200}


def test_an_unknown_key_is_a_401_and_not_counted(api, make_key, settings, clock):
    settings.PERCALL_RATE_KEY_PER_MINUTE = 1
    stranger = api("pc_not_a_key")

    assert [stranger.get(URL).status_code for _ in range(3)] == [401, 401, 401]
