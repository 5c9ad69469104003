"""The limits check: what the gateway is told for a tenant, from the cache on a hit (no
query), rebuilt when an evaluation or a budget change alters the state, and isolated per
tenant."""

import warnings
from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
import time_machine
from django.core.cache import cache

from apps.alerts.models import Budget, BudgetPeriod
from apps.alerts.services.budgets.evaluate import budgets_evaluate
from apps.alerts.services.budgets.manage import budget_create, budget_deactivate
from apps.alerts.services.limits import limits_get
from apps.costs.models import CostRollup
from tests.alerts.test_budgets import spend

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def world(make_tenant, make_key, api, clock):
    class World:
        acme = make_tenant("acme")
        globex = make_tenant("globex")
        operator = api(make_key())
        gateway = api(make_key(scopes=("ingest",), tenant=acme))

    return World


def tenant_budget(tenant, action, amount="100", **kwargs):
    return budget_create(
        name=kwargs.pop("name", f"{tenant.external_id} {action}"),
        scope=Budget.Scope.TENANT,
        tenant=tenant,
        measure=Budget.Measure.COST,
        amount=D(amount),
        action=action,
        **kwargs,
    )


def evaluate(django_capture_on_commit_callbacks):
    """An evaluation whose after-commit cache refresh runs, as it does outside a test."""
    with django_capture_on_commit_callbacks(execute=True):
        budgets_evaluate()


def test_allow_when_nothing_is_over(world):
    answer = world.operator.get("/api/v1/limits/acme")
    assert answer.status_code == 200
    assert answer.json() == {
        "tenant": "acme",
        "decision": "allow",
        "limits": [],
        "evaluated_at": None,
    }


def test_over_the_limit_throttles_and_the_cache_follows_evaluations(
    world, django_capture_on_commit_callbacks
):
    budget = tenant_budget(world.acme, Budget.Action.THROTTLE)
    spend("80.00")
    evaluate(django_capture_on_commit_callbacks)
    assert world.gateway.get("/api/v1/limits/acme").json()["decision"] == "allow"

    spend("35.00", day=3)  # 115 of 100: past the 110 % limit
    evaluate(django_capture_on_commit_callbacks)
    answer = world.gateway.get("/api/v1/limits/acme").json()
    assert answer == {
        "tenant": "acme",
        "decision": "throttle",
        "limits": [
            {
                "budget": str(budget.id),
                "name": "acme throttle",
                "scope": "tenant",
                "scope_value": "",
                "action": "throttle",
                "percent": "115.00",
            }
        ],
        "evaluated_at": "2026-11-20T12:00:00Z",
    }
    # Re-costing brings it back to 100: under 110, so the gateway may let calls through
    CostRollup.objects.filter(day=date(2026, 11, 3)).update(cost=D("20"))
    evaluate(django_capture_on_commit_callbacks)
    assert world.gateway.get("/api/v1/limits/acme").json()["decision"] == "allow"


def test_a_hit_is_one_cache_get_and_no_query(world, django_assert_num_queries):
    tenant_budget(world.acme, Budget.Action.DEGRADE)
    spend("120.00")
    budgets_evaluate()
    first = limits_get(external_id="acme")  # a miss: built and cached
    assert first["decision"] == "degrade"
    with django_assert_num_queries(0):
        assert limits_get(external_id="acme") == first
    # Over HTTP the only query left is the API key's lookup.
    world.gateway.get("/api/v1/limits/acme")
    with django_assert_num_queries(1):
        assert world.gateway.get("/api/v1/limits/acme").json() == first


def test_deactivating_a_budget_lifts_its_limit_at_once(world, django_capture_on_commit_callbacks):
    budget = tenant_budget(world.acme, Budget.Action.THROTTLE)
    spend("120.00")
    evaluate(django_capture_on_commit_callbacks)
    assert world.gateway.get("/api/v1/limits/acme").json()["decision"] == "throttle"
    with django_capture_on_commit_callbacks(execute=True):
        budget_deactivate(budget_id=budget.id)
    assert world.gateway.get("/api/v1/limits/acme").json()["decision"] == "allow"


def test_notify_budgets_never_limit_and_the_strongest_action_wins(world):
    tenant_budget(world.acme, Budget.Action.NOTIFY, name="notify")
    tenant_budget(world.acme, Budget.Action.DEGRADE, name="degrade")
    tenant_budget(world.acme, Budget.Action.THROTTLE, name="throttle", amount="200")
    spend("150.00")  # 150 % of 100 (notify and degrade), 75 % of 200 (throttle)
    budgets_evaluate()
    answer = limits_get(external_id="acme")
    assert answer["decision"] == "degrade"
    assert [limit["name"] for limit in answer["limits"]] == ["degrade"]
    assert BudgetPeriod.objects.get(budget__name="notify").percent == D("150.00")

    spend("80.00", day=3)  # 230: the throttle budget too (115 % of 200)
    budgets_evaluate()
    cache.clear()
    answer = limits_get(external_id="acme")
    assert answer["decision"] == "throttle"
    assert [limit["name"] for limit in answer["limits"]] == ["degrade", "throttle"]


def test_feature_limits_are_listed_for_matching_calls_not_the_whole_tenant(world):
    budget_create(
        name="chat everywhere", scope="feature", scope_value="chat", measure="cost",
        amount=D("10"), action="degrade",
    )  # fmt: skip
    spend("8.00")
    spend("4.00", tenant="globex")  # 12 of 10 across tenants: 120 %
    budgets_evaluate()
    for tenant in ("acme", "globex"):
        answer = limits_get(external_id=tenant)
        assert answer["decision"] == "allow"  # the tenant's other calls go through
        assert [(x["scope"], x["scope_value"], x["action"]) for x in answer["limits"]] == [
            ("feature", "chat", "degrade")
        ]


def test_a_new_period_lifts_last_months_limit(world, django_capture_on_commit_callbacks):
    tenant_budget(world.acme, Budget.Action.THROTTLE)
    spend("120.00")
    evaluate(django_capture_on_commit_callbacks)
    assert limits_get(external_id="acme")["decision"] == "throttle"
    with time_machine.travel(datetime(2026, 12, 1, 0, 5, tzinfo=UTC), tick=False):
        evaluate(django_capture_on_commit_callbacks)
        assert limits_get(external_id="acme")["decision"] == "allow"


def test_a_tenant_key_reads_only_its_own_tenant(world):
    foreign = world.gateway.get("/api/v1/limits/globex")
    unknown = world.gateway.get("/api/v1/limits/nobody")
    assert (foreign.status_code, unknown.status_code) == (404, 404)
    assert foreign.content.decode() == unknown.content.decode().replace("nobody", "globex")
    assert world.operator.get("/api/v1/limits/globex").status_code == 200
    assert world.operator.get("/api/v1/limits/nobody").status_code == 404


def test_changing_the_action_to_notify_lifts_the_limit_at_once(
    world, django_capture_on_commit_callbacks
):
    from apps.alerts.services.budgets.manage import budget_update

    budget = tenant_budget(world.acme, Budget.Action.THROTTLE)
    spend("120.00")
    evaluate(django_capture_on_commit_callbacks)
    assert limits_get(external_id="acme")["decision"] == "throttle"
    with django_capture_on_commit_callbacks(execute=True):
        budget_update(budget_id=budget.id, changes={"action": "notify"})
    assert limits_get(external_id="acme") | {"evaluated_at": None} == {
        "tenant": "acme",
        "decision": "allow",
        "limits": [],
        "evaluated_at": None,
    }


def test_an_id_no_cache_backend_takes_is_hashed_into_the_key(world):
    """Given an id from the URL with spaces, control and non-ASCII characters (memcached
    refuses such keys), when the gateway asks, then it is a plain 404 and the key is safe."""
    odd = "ac me\x0e\u00e9" + "x" * 300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        response = world.operator.get(f"/api/v1/limits/{odd}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "tenant_not_found"
