import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Sum

from apps.demo.business import llm_cost
from apps.metering.models import Event, UsageRollup
from apps.tenants.models import CostCenter, Tenant
from apps.tenants.services.api_keys import api_key_create

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
SMALL = ["--events", "3000", "--days", "10", "--seed", "7"]
pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def counts(output: str) -> dict[str, int]:
    found = re.search(
        r"(\d+) sent .* (\d+) accepted, (\d+) duplicates, (\d+) conflicts, (\d+) rejected", output
    )
    assert found, output
    sent, accepted, duplicates, conflicts, rejected = map(int, found.groups())
    return {
        "sent": sent,
        "accepted": accepted,
        "duplicates": duplicates,
        "conflicts": conflicts,
        "rejected": rejected,
    }


@pytest.fixture
def loaded(clock) -> dict[str, int]:
    return counts(run("demo_load", *SMALL))


def test_load_builds_a_business_of_tenants_in_several_currencies(loaded):
    tenants = Tenant.objects.all()
    assert tenants.count() == 30
    assert {t.currency for t in tenants} == {"USD", "EUR", "GBP", "JPY"}
    assert len({t.timezone for t in tenants}) > 10
    assert {t.tax_rate for t in tenants} >= {Decimal("0"), Decimal("0.2"), Decimal("0.19")}
    signups = sorted(t.registered_at for t in tenants)
    assert signups[0] == NOW.replace(minute=0) - timedelta(days=10)
    assert signups[-1] - signups[0] > timedelta(days=5)  # staggered over the period
    assert CostCenter.objects.get(code="support-bot").parent.code == "product"
    assert get_user_model().objects.get(username="admin").is_superuser


def test_every_accepted_event_is_stored_and_about_as_many_as_asked(loaded):
    assert loaded["rejected"] == 0
    assert loaded["conflicts"] == 0
    assert loaded["accepted"] == loaded["sent"]
    assert Event.objects.count() == loaded["accepted"]
    assert 2400 <= loaded["accepted"] <= 3600
    assert not Event.objects.filter(timestamp__gt=NOW + timedelta(minutes=5)).exists()


def test_if_empty_does_nothing_once_the_demo_is_loaded(loaded):
    output = run("demo_load", *SMALL, "--if-empty")
    assert "nothing to do" in output
    assert Event.objects.count() == loaded["accepted"]


def test_a_rerun_sends_the_same_ids_and_stores_nothing_new(loaded):
    again = counts(run("demo_load", *SMALL))
    assert again["accepted"] == 0
    assert again["duplicates"] == loaded["sent"]
    assert again["conflicts"] == 0
    assert Event.objects.count() == loaded["accepted"]
    assert Tenant.objects.count() == 30


def test_a_rerun_hours_later_resends_the_same_period(loaded):
    with time_machine.travel(NOW + timedelta(hours=5), tick=False):
        again = counts(run("demo_load", *SMALL))
    assert (again["accepted"], again["conflicts"]) == (0, 0)
    assert again["duplicates"] == loaded["sent"]


def test_some_tenants_never_call(loaded):
    calling = set(Event.objects.values_list("tenant_id", flat=True).distinct())
    silent = Tenant.objects.exclude(id__in=calling)
    assert silent.exists()
    assert not silent.filter(first_call_at__isnull=False).exists()
    assert len(calling) >= 15
    for tenant in Tenant.objects.filter(id__in=calling):
        assert tenant.first_call_at >= tenant.registered_at


def test_traces_fan_out_from_one_root_span(loaded):
    sizes = Counter(Event.objects.values_list("trace_id", flat=True))
    trace_id = next(t for t, n in sizes.most_common() if n >= 4)
    spans = list(Event.objects.filter(trace_id=trace_id))
    roots = [s for s in spans if s.parent_span_id is None]
    assert len(roots) == 1
    assert roots[0].type == "api.call"
    assert {s.parent_span_id for s in spans if s is not roots[0]} == {roots[0].span_id}
    assert len({s.span_id for s in spans}) == len(spans)
    assert len({(s.feature, s.endpoint, s.team, s.tenant_id) for s in spans}) == 1


def test_traffic_has_llm_costs_retries_cache_hits_and_external_calls(loaded):
    events = Event.objects.all()
    llm = events.filter(type="llm.call", status_code=200).exclude(model="llama-3.1-8b-instruct")
    call = llm.filter(model="gpt-4o").first() or llm.first()
    assert call.cost == llm_cost(
        model=call.model,
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        cache_read_tokens=call.cache_read_tokens,
    )
    assert call.cost_currency == "USD" and call.external is True
    assert events.filter(attempt__gte=2).exists()
    assert events.filter(status_code=429).exists()
    assert events.filter(cache_hit=True, cache_read_tokens__gt=0).exists()
    assert events.filter(type="external.call", external=True).exists()
    assert events.filter(type="tool.call").exists()
    assert set(events.values_list("environment", flat=True)) >= {"prod", "staging"}
    assert events.filter(endpoint="/v1/documents/{document_id}/extract").exists()


def test_the_planted_incident_moves_summaries_to_the_dearer_model_for_36_hours(loaded):
    # Given the demo's last 36 hours (10 days ending at NOW's hour: 12:00 on 10 March)
    incident_start = datetime(2026, 3, 10, 12, tzinfo=UTC) - timedelta(hours=36)
    tagged = Event.objects.filter(properties__deployment="summarize-2.4.0")
    summaries = Event.objects.filter(feature="summarize", type="llm.call")
    # Then the release serves summarize calls only, all inside the window,
    assert tagged.exists()
    assert set(tagged.values_list("feature", flat=True)) == {"summarize"}
    assert not tagged.filter(timestamp__lt=incident_start).exists()
    # every summary's LLM call in the window is the release's, on the dearer model (past
    # the calls of traces begun just before it, which finish within minutes),
    late = summaries.filter(timestamp__gte=incident_start + timedelta(minutes=10))
    assert late.exists()
    assert not late.exclude(properties__deployment="summarize-2.4.0").exists()
    assert set(late.values_list("model", flat=True)) == {"claude-sonnet-4"}
    # while no summary before it used that model.
    before = summaries.filter(timestamp__lt=incident_start)
    assert before.exists()
    assert not before.filter(model="claude-sonnet-4").exists()


def test_a_known_llm_call_costs_what_the_price_table_says():
    # gpt-4o: 2.50 USD per 1M fresh input tokens, 1.25 per 1M cached, 10.00 per 1M output.
    # 800 fresh + 200 cached + 500 output = 0.002 + 0.00025 + 0.005
    cost = llm_cost(model="gpt-4o", input_tokens=1000, output_tokens=500, cache_read_tokens=200)
    assert cost == Decimal("0.00725")


def test_pipeline_run_rolls_up_every_stored_event(loaded):
    output = run("pipeline_run", "--as-of", "2026-03-10T12:00:00Z")
    assert "rollups" in output
    stored = Event.objects.count()
    assert UsageRollup.objects.aggregate(total=Sum("events"))["total"] == stored
    per_tenant = Counter(Event.objects.values_list("tenant_id", flat=True))
    rolled = dict(UsageRollup.objects.values_list("tenant_id").annotate(n=Sum("events")).order_by())
    assert rolled == dict(per_tenant)


def test_pipeline_run_shows_findings_fired_budgets_a_throttled_partner_and_forecasts(
    loaded, client
):
    from apps.alerts.models import BudgetAlert, BudgetPeriod, ForecastSnapshot
    from apps.assurance.models import Finding

    output = run("pipeline_run", "--as-of", "2026-03-10T12:00:00Z")

    assert "leakage 2026-03" in output and "budgets:" in output and "MAPE" in output
    assert Finding.objects.filter(status="open").exists()
    # the incident partner's pilot budget is sized at 85 % of its spend: 1 / 0.85 = 117.6 %,
    # past all three thresholds, and it throttles
    over = BudgetPeriod.objects.get(over_limit=True)
    assert over.percent > 110
    assert sorted(
        BudgetAlert.objects.filter(budget=over.budget).values_list("threshold", flat=True)
    ) == [70, 90, 110]
    key = api_key_create(name="gateway", scopes=["read"], tenant=None).plaintext
    answer = client.get(
        f"/api/v1/limits/{over.budget.tenant.external_id}",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.json()["decision"] == "throttle"
    assert ForecastSnapshot.objects.filter(period_start="2026-03-01", scope="total").exists()
    # a rerun changes nothing: the same budgets, the same alerts
    budgets, alerts = BudgetPeriod.objects.count(), BudgetAlert.objects.count()
    run("pipeline_run", "--as-of", "2026-03-10T12:00:00Z")
    assert (BudgetPeriod.objects.count(), BudgetAlert.objects.count()) == (budgets, alerts)


def test_demo_info_prints_a_working_key_and_curl_example(loaded, client):
    output = run("demo_info")
    assert "http://127.0.0.1:8000/api/docs/" in output
    assert "admin / admin" in output
    key = re.search(r"Bearer (pc_\S+)'", output).group(1)
    body = re.search(r"-d '(.+)'", output).group(1)
    response = client.post(
        "/api/v1/events", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 1


def test_demo_info_names_the_address_the_server_runs_on(loaded):
    output = run("demo_info", "--base-url", "http://127.0.0.1:8123/")
    assert "Percall is starting on http://127.0.0.1:8123\n" in output
    assert "curl -sS -X POST http://127.0.0.1:8123/api/v1/events" in output
    assert "127.0.0.1:8000" not in output


def test_the_demo_partner_signs_in_to_the_portal_for_two_partners(loaded, client):
    output = run("demo_info")
    assert "partner / partner" in output
    # the partner was invited like any colleague: owner of the two busiest demo tenants
    signed_in = client.post(
        "/portal/login/", {"username": "partner", "password": "partner"}, follow=True
    )
    # two tenants: the portal asks which one to act for
    assert signed_in.status_code == 200
    assert signed_in.redirect_chain[-1][0].endswith("/portal/tenants/")
    partner = get_user_model().objects.get(username="partner")
    assert sorted(partner.memberships.values_list("role", flat=True)) == ["owner", "owner"]


def test_the_demo_finance_user_signs_in_to_the_console(loaded, client):
    output = run("demo_info")
    assert "finance / finance" in output
    signed_in = client.post(
        "/console/login/", {"username": "finance", "password": "finance"}, follow=True
    )
    assert signed_in.status_code == 200
    assert signed_in.redirect_chain[-1][0].startswith("/console/")
    assert get_user_model().objects.get(username="finance").is_superuser is False
