"""The chargeback API (operator-wide keys only, JSON errors naming the field), the
statements_run command, the admin's issue action and the full-cost-per-call metric."""

import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from apps.chargeback.models import Statement
from apps.chargeback.services.statements import statement_issue, statements_run
from tests.chargeback.chargeback_setup import NOW, call, center, october, pool, record

__all__ = ["NOW"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
UUID0 = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def acme(make_tenant):
    return make_tenant("acme")


@pytest.fixture
def admin(make_key, api):
    return api(make_key(scopes=("read", "admin")))


@pytest.fixture
def reader(make_key, api):
    return api(make_key(scopes=("read",)))


@pytest.fixture
def october_costs(acme):
    """alpha 1.00 + 2.00 (budget 5.00), Unallocated 0.40."""
    center("alpha", budget="5.00")
    record(call("1.00", team="alpha", day=3), call("2.00", team="alpha", day=4))
    record(call("0.40", feature="orphan"))


def error(response) -> dict:
    return response.json()["error"]


def test_run_list_detail_issue_and_correct_over_the_api(october_costs, admin):
    run = admin.post("/api/v1/statements/run?period=2026-10")
    assert run.status_code == 200, run.content
    assert run.json() == {
        "period": "2026-10",
        "drafted": ["", "alpha"],
        "issued_unchanged": [],
        "issued_differs": [],
        "removed": [],
    }

    listed = admin.get("/api/v1/statements", {"period": "2026-10"})
    assert listed.status_code == 200
    results = listed.json()["results"]
    assert sorted((r["cost_center"]["code"], r["total_amount"]) for r in results) == [
        ("", "0.4000"),
        ("alpha", "3.0000"),
    ]
    assert {r["lines"] for r in results} == {None}
    alpha_id = next(r["id"] for r in results if r["cost_center"]["code"] == "alpha")

    detail = admin.get(f"/api/v1/statements/{alpha_id}").json()
    assert (detail["status"], detail["number"], detail["budget_amount"]) == (
        "draft",
        None,
        "5.0000",
    )
    assert detail["variance_amount"] == "2.0000"
    assert [(ln["day"], ln["amount"]) for ln in detail["lines"]] == [
        ("2026-10-03", "1.0000"),
        ("2026-10-04", "2.0000"),
    ]

    issued = admin.post(f"/api/v1/statements/{alpha_id}/issue")
    assert issued.status_code == 200, issued.content
    assert (issued.json()["status"], issued.json()["number"]) == ("issued", "SB-2026-10-0001")

    again = admin.post(f"/api/v1/statements/{alpha_id}/issue")
    assert again.status_code == 409
    assert error(again)["code"] == "statement_not_draft"

    corrected = admin.post(f"/api/v1/statements/{alpha_id}/corrections", {"reason": "late rows"})
    assert corrected.status_code == 201, corrected.content
    body = corrected.json()
    assert (body["status"], body["corrects"], body["correction_reason"]) == (
        "draft",
        alpha_id,
        "late rows",
    )
    assert body["total_amount"] == "3.0000"


def test_a_draft_cannot_be_corrected(october_costs, admin):
    statements_run(period=october())
    draft = Statement.objects.get(cost_center__code="alpha")

    response = admin.post(f"/api/v1/statements/{draft.id}/corrections", {"reason": "why"})

    assert response.status_code == 409
    assert error(response)["code"] == "statement_not_issued"


def test_a_correction_needs_a_reason(october_costs, admin):
    statements_run(period=october())
    draft = Statement.objects.get(cost_center__code="alpha")
    admin.post(f"/api/v1/statements/{draft.id}/issue")

    response = admin.post(f"/api/v1/statements/{draft.id}/corrections", {})

    assert response.status_code == 400
    assert (error(response)["code"], error(response)["field"]) == ("invalid", "reason")
    assert Statement.objects.count() == 2


@pytest.mark.parametrize(
    ("path", "params"),
    [
        pytest.param("/api/v1/statements", {}, id="list-missing"),
        pytest.param("/api/v1/statements", {"period": "October"}, id="list-bad"),
        pytest.param("/api/v1/statements", {"period": "2026-10-01..2026-10-15"}, id="list-days"),
        pytest.param("/api/v1/exports/focus", {"period": "2026-13"}, id="focus-bad"),
        pytest.param("/api/v1/exports/chargeback-gl", {}, id="gl-missing"),
    ],
)
def test_a_bad_period_is_a_400_naming_the_field(admin, path, params):
    response = admin.get(path, params)

    assert response.status_code == 400, response.content
    assert error(response)["field"] == "period"
    assert error(response)["code"]


def test_running_without_a_period_is_a_400_naming_the_field(admin):
    response = admin.post("/api/v1/statements/run")

    assert response.status_code == 400
    assert error(response)["field"] == "period"


@pytest.mark.parametrize(
    "statement_id",
    [
        pytest.param(UUID0, id="unknown"),
        pytest.param("not-a-uuid", id="malformed"),
    ],
)
def test_an_unknown_statement_is_a_404_naming_the_id(admin, statement_id):
    for response in (
        admin.get(f"/api/v1/statements/{statement_id}"),
        admin.get(f"/api/v1/statements/{statement_id}/pdf"),
        admin.post(f"/api/v1/statements/{statement_id}/issue"),
    ):
        assert response.status_code == 404, response.content
        assert (error(response)["code"], error(response)["field"]) == ("statement_not_found", "id")


def test_a_tenant_bound_key_gets_403_everywhere(acme, make_key, api, october_costs):
    statements_run(period=october())
    statement = Statement.objects.get(cost_center__code="alpha")
    bound = api(make_key(scopes=("read", "admin"), tenant=acme))

    for response in (
        bound.get("/api/v1/statements", {"period": "2026-10"}),
        bound.post("/api/v1/statements/run?period=2026-10"),
        bound.get(f"/api/v1/statements/{statement.id}"),
        bound.get(f"/api/v1/statements/{statement.id}/pdf"),
        bound.post(f"/api/v1/statements/{statement.id}/issue"),
        bound.post(f"/api/v1/statements/{statement.id}/corrections", {"reason": "x"}),
        bound.get("/api/v1/exports/focus", {"period": "2026-10"}),
        bound.get("/api/v1/exports/chargeback-gl", {"period": "2026-10"}),
        bound.get("/api/v1/analytics/full_cost_per_call", {"period": "2026-10"}),
    ):
        assert response.status_code == 403, response.content
        assert error(response)["code"]
    statement.refresh_from_db()
    assert statement.status == Statement.Status.DRAFT


def test_a_read_key_reads_but_cannot_run_or_issue(reader, october_costs):
    statements_run(period=october())
    statement = Statement.objects.get(cost_center__code="alpha")

    assert reader.get(f"/api/v1/statements/{statement.id}").status_code == 200
    assert reader.post("/api/v1/statements/run?period=2026-10").status_code == 403
    assert reader.post(f"/api/v1/statements/{statement.id}/issue").status_code == 403
    statement.refresh_from_db()
    assert statement.status == Statement.Status.DRAFT


def test_no_key_is_401(client):
    response = client.get("/api/v1/statements", {"period": "2026-10"})

    assert response.status_code == 401


def test_exports_and_pdf_over_the_api(october_costs, admin):
    statements_run(period=october())
    statement = Statement.objects.get(cost_center__code="alpha")

    focus = admin.get("/api/v1/exports/focus", {"period": "2026-10"})
    gl = admin.get("/api/v1/exports/chargeback-gl", {"period": "2026-10"})
    pdf = admin.get(f"/api/v1/statements/{statement.id}/pdf")

    assert focus.status_code == gl.status_code == pdf.status_code == 200
    assert focus["Content-Type"].startswith("text/csv")
    assert 'filename="focus-2026-10.csv"' in focus["Content-Disposition"]
    assert focus.content.decode().startswith("BilledCost,")
    assert 'filename="chargeback-gl-2026-10.csv"' in gl["Content-Disposition"]
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert f'filename="draft-{statement.id}.pdf"' in pdf["Content-Disposition"]


# --- the command -----------------------------------------------------------------------------


def test_the_command_drafts_a_month(october_costs):
    out = io.StringIO()

    call_command("statements_run", "--period", "2026-10", stdout=out)

    assert "2026-10: drafted 2" in out.getvalue()
    assert {s.total_amount for s in Statement.objects.all()} == {Decimal("3.00"), Decimal("0.40")}


def test_the_command_defaults_to_the_month_last_closed(october_costs):
    out = io.StringIO()

    call_command("statements_run", stdout=out)

    assert out.getvalue().startswith("2026-10: drafted 2")


@pytest.mark.parametrize("period", ["2026-1", "soon", "2026-10-01..2026-10-08"])
def test_the_command_exits_2_on_a_bad_period(db, period):
    err = io.StringIO()

    with pytest.raises(SystemExit) as exited:
        call_command("statements_run", "--period", period, stderr=err)

    assert exited.value.code == 2
    assert "period" in err.getvalue()
    assert not Statement.objects.exists()


def test_the_command_names_issued_statements_that_moved(october_costs):
    statements_run(period=october())
    statement_issue(statement_id=Statement.objects.get(cost_center__code="alpha").id, actor=None)
    record(call("9.00", team="alpha", day=28))
    out = io.StringIO()

    call_command("statements_run", "--period", "2026-10", stdout=out)

    assert "issued but changed since 1 (alpha: correct them)" in out.getvalue()


# --- the admin -------------------------------------------------------------------------------


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@percall.test", "pw")
    client.force_login(user)
    return user


def test_the_admin_issue_action_issues_the_selected_drafts(october_costs, client, staff):
    statements_run(period=october())
    ids = [str(s.id) for s in Statement.objects.order_by("cost_center__code")]

    response = client.post(
        "/admin/chargeback/statement/",
        {"action": "issue", "_selected_action": ids},
        follow=True,
    )

    assert response.status_code == 200
    issued = Statement.objects.filter(status=Statement.Status.ISSUED)
    assert sorted(s.number for s in issued) == ["SB-2026-10-0001", "SB-2026-10-0002"]
    assert {s.issued_by_id for s in issued} == {staff.id}
    assert "2 statement(s) issued" in response.content.decode()

    again = client.post(
        "/admin/chargeback/statement/",
        {"action": "issue", "_selected_action": ids},
        follow=True,
    )
    assert "0 statement(s) issued" in again.content.decode()


def test_the_admin_cannot_add_or_delete_statements(october_costs, client, staff):
    statements_run(period=october())
    statement = Statement.objects.first()

    assert client.get("/admin/chargeback/statement/add/").status_code == 403
    assert client.get(f"/admin/chargeback/statement/{statement.id}/delete/").status_code == 403
    assert client.get(f"/admin/chargeback/statement/{statement.id}/change/").status_code == 200


# --- full cost per call ----------------------------------------------------------------------


def test_full_cost_per_call_adds_the_allocated_share(october_costs, admin):
    # alpha: 2 calls, 3.00 direct; the 12.00 pool goes to alpha alone (Unallocated never shares)
    pool("platform", "12.00", "even")

    response = admin.get(
        "/api/v1/analytics/full_cost_per_call", {"period": "2026-10", "group_by": "team"}
    )

    assert response.status_code == 200, response.content
    rows = {tuple(r["group"].values()): r for r in response.json()["rows"]}
    alpha = rows[("alpha",)]
    assert (alpha["calls"], Decimal(alpha["direct_cost"]), Decimal(alpha["allocated_cost"])) == (
        2,
        Decimal("3.00"),
        Decimal("12.00"),
    )
    assert Decimal(alpha["value"]) == Decimal("7.50")  # (3.00 + 12.00) / 2
    assert Decimal(alpha["direct_cost_per_call"]) == Decimal("1.50")


def two_tenants_in_alpha(make_tenant):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    center("alpha")
    record(call("1.00", team="alpha"), call("1.00", team="alpha", tenant="globex"))
    pool("platform", "10.00", "even")
    return acme, globex


def test_full_cost_per_call_by_tenant_splits_the_pool_by_calls(make_tenant, admin):
    two_tenants_in_alpha(make_tenant)

    response = admin.get(
        "/api/v1/analytics/full_cost_per_call", {"period": "2026-10", "group_by": "tenant"}
    )

    rows = response.json()["rows"]
    assert sorted(Decimal(r["value"]) for r in rows) == [Decimal("6.00"), Decimal("6.00")]


def test_full_cost_per_call_for_one_tenant_matches_its_row_by_tenant(make_tenant, admin):
    acme, _ = two_tenants_in_alpha(make_tenant)

    response = admin.get(
        "/api/v1/analytics/full_cost_per_call", {"period": "2026-10", "tenant": str(acme.id)}
    )

    (row,) = response.json()["rows"]
    # acme made 1 of alpha's 2 calls: 1.00 direct + half of the 10.00 pool
    assert Decimal(row["allocated_cost"]) == Decimal("5.00")
    assert Decimal(row["value"]) == Decimal("6.00")
