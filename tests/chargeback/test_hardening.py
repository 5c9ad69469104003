"""Statements after the cost moves: corrections to nothing stay (at zero), drafts to nothing go,
issued statements whose cost is gone are reported; issuing refuses a stale draft (late usage
or new prices); shared pools are checked before they are saved; issuing locks the prices the
admin may still change."""

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.catalog.models import FxRate, PriceBookVersion
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.chargeback.errors import ChargebackInvalid, StatementNotFound, StatementStale
from apps.chargeback.models import CostCenterRule, SharedCostPool, Statement
from apps.chargeback.services.statements import (
    statement_correct,
    statement_issue,
    statements_run,
)
from apps.costs.selectors import cost_period_parse
from apps.costs.services.rollup import cost_days_reprice
from tests.chargeback.chargeback_setup import NOW, call, center, october, pool, record, rule

__all__ = ["NOW"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
OCT_LAST = date(2026, 10, 31)


@pytest.fixture(autouse=True)
def tenant(make_tenant):
    return make_tenant("acme")


def drafts() -> dict[str, Statement]:
    return {
        (s.cost_center.code if s.cost_center else ""): s
        for s in Statement.objects.filter(status=Statement.Status.DRAFT)
    }


def move_rule(value: str, to) -> None:
    """The feature's cost belongs to ``to`` from now on (a new rule replacing the old one)."""
    CostCenterRule.objects.filter(field="feature", value=value).delete()
    rule("feature", value, to)


def apply(doc: dict) -> None:
    catalog_apply(doc=catalog_parse(content=json.dumps(doc)))


def price_book(effective_from: str) -> dict:
    return {
        "price_book": [
            {
                "effective_from": effective_from,
                "llm": [
                    {"provider": "openai", "model": "gpt-4o", "input": "2.50", "output": "10.00"}
                ],
            }
        ]
    }


# --- 1. statements_run after the cost moved ---------------------------------------------------


def test_a_correction_to_nothing_stays_a_zero_draft_and_an_ordinary_draft_to_nothing_goes(clock):
    # given alpha (feature search, 1.00) issued and corrected, gamma (feature ads, 2.00) drafted
    alpha, beta, gamma = center("alpha"), center("beta"), center("gamma")
    rule("feature", "search", alpha)
    rule("feature", "ads", gamma)
    record(call("1.00", feature="search"), call("2.00", feature="ads"))
    statements_run(period=october())
    issued = statement_issue(statement_id=drafts()["alpha"].id, actor=None)
    clock.shift(timedelta(minutes=1))
    correction = statement_correct(statement_id=issued.id, reason="review")
    assert correction.total_amount == Decimal("1.00")
    assert correction.lines.count() == 1

    # when both features' cost moves to beta
    move_rule("search", beta)
    move_rule("ads", beta)
    clock.shift(timedelta(minutes=1))
    report = statements_run(period=october())

    # then the correction stays, at zero and without lines; gamma's draft is deleted
    assert report.as_dict() == {
        "period": "2026-10",
        "drafted": ["beta", "alpha"],
        "issued_unchanged": [],
        "issued_differs": [],
        "removed": ["gamma"],
    }
    correction.refresh_from_db()
    assert correction.status == Statement.Status.DRAFT
    assert correction.corrects_id == issued.id
    assert (
        correction.direct_amount,
        correction.allocated_amount,
        correction.total_amount,
        correction.calls,
    ) == (Decimal("0.00"), Decimal("0.00"), Decimal("0.00"), 0)
    assert correction.lines.count() == 0
    assert not Statement.objects.filter(cost_center=gamma).exists()
    assert drafts()["beta"].total_amount == Decimal("3.00")  # 1.00 + 2.00
    issued.refresh_from_db()
    assert (issued.status, issued.total_amount) == (Statement.Status.ISSUED, Decimal("1.00"))


def test_an_issued_statement_whose_cost_is_all_gone_is_reported_as_differing():
    alpha, gamma = center("alpha"), center("gamma")
    center("beta")
    rule("feature", "search", alpha)
    record(call("1.00", feature="search"), call("2.00", team="beta"))
    statements_run(period=october())
    for draft in drafts().values():
        statement_issue(statement_id=draft.id, actor=None)

    move_rule("search", gamma)
    report = statements_run(period=october())

    assert report.as_dict() == {
        "period": "2026-10",
        "drafted": ["gamma"],
        "issued_unchanged": ["beta"],
        "issued_differs": ["alpha"],
        "removed": [],
    }
    assert drafts()["gamma"].total_amount == Decimal("1.00")


def test_an_issued_statement_with_a_pool_part_only_is_unchanged_while_the_pool_is():
    # alpha has no direct cost but a fixed 100 % share of a 5.00 pool: nothing moved
    alpha = center("alpha")
    center("beta")
    pool("rent", "5.00", SharedCostPool.Method.FIXED, shares={"alpha": "100"})
    record(call("2.00", team="beta"))
    statements_run(period=october())
    statement_issue(statement_id=drafts()["alpha"].id, actor=None)

    report = statements_run(period=october())

    assert report.issued_unchanged == ["alpha"]
    assert Statement.objects.get(cost_center=alpha).total_amount == Decimal("5.00")


def test_statements_are_drafted_for_months_only():
    record(call("1.00"))

    with pytest.raises(ChargebackInvalid) as raised:
        statements_run(period=cost_period_parse("2026-10-05..2026-10-12"))

    assert raised.value.field == "period"
    assert raised.value.code == "chargeback_invalid"
    assert not Statement.objects.exists()


# --- 2. issuing a stale draft -----------------------------------------------------------------


def test_a_day_costed_again_after_the_draft_makes_it_stale_until_the_next_run(clock):
    center("alpha")
    record(call("1.00", team="alpha", day=5))
    statements_run(period=october())
    draft = drafts()["alpha"]

    clock.shift(timedelta(minutes=5))
    record(call("0.25", team="alpha", day=20))  # a late October event, rolled up and costed

    with pytest.raises(StatementStale) as raised:
        statement_issue(statement_id=draft.id, actor=None)
    assert (raised.value.status_code, raised.value.code) == (409, "statement_stale")
    draft.refresh_from_db()
    assert (draft.status, draft.number, draft.total_amount) == (
        Statement.Status.DRAFT,
        None,
        Decimal("1.00"),
    )

    clock.shift(timedelta(minutes=5))
    statements_run(period=october())
    issued = statement_issue(statement_id=draft.id, actor=None)

    assert issued.status == Statement.Status.ISSUED
    assert issued.total_amount == Decimal("1.25")  # 1.00 + 0.25


def test_a_late_event_on_an_already_costed_day_makes_the_draft_stale(clock):
    center("alpha")
    record(call("1.00", team="alpha", day=5))
    statements_run(period=october())

    clock.shift(timedelta(seconds=1))
    record(call("0.50", team="alpha", day=5))

    with pytest.raises(StatementStale):
        statement_issue(statement_id=drafts()["alpha"].id, actor=None)


def test_a_late_event_of_another_month_does_not_make_october_stale(clock):
    center("alpha")
    record(call("1.00", team="alpha"))
    statements_run(period=october())

    clock.shift(timedelta(minutes=1))
    record({**call("3.00", team="alpha"), "timestamp": "2026-11-01T08:00:00Z"})

    issued = statement_issue(statement_id=drafts()["alpha"].id, actor=None)
    assert issued.total_amount == Decimal("1.00")


@pytest.mark.parametrize(
    "new_prices",
    [
        pytest.param({"fx_rates": [{"currency": "EUR", "date": "2026-10-01", "rate": "1.10"}]}),
        pytest.param({"fx_rates": [{"currency": "EUR", "date": "2026-10-31", "rate": "1.10"}]}),
        pytest.param(price_book("2026-10-01")),
        pytest.param(price_book("2026-10-31")),
    ],
    ids=["fx-oct-1", "fx-oct-31", "book-oct-1", "book-oct-31"],
)
def test_new_prices_for_october_make_the_draft_stale_until_repriced(clock, new_prices):
    center("alpha")
    record(call("1.00", team="alpha", day=5), call("2.00", team="alpha", day=31))
    statements_run(period=october())
    draft = drafts()["alpha"]

    clock.shift(timedelta(minutes=1))
    apply(new_prices)  # not yet re-costed
    with pytest.raises(StatementStale):
        statement_issue(statement_id=draft.id, actor=None)
    # a fresh draft is still stale: the days themselves have not been costed again
    statements_run(period=october())
    with pytest.raises(StatementStale):
        statement_issue(statement_id=draft.id, actor=None)

    clock.shift(timedelta(minutes=1))
    assert cost_days_reprice() >= 1
    clock.shift(timedelta(minutes=1))
    statements_run(period=october())
    issued = statement_issue(statement_id=draft.id, actor=None)

    # the events carry their own USD cost, so the amounts are unchanged
    assert issued.total_amount == Decimal("3.00")


def test_prices_from_november_do_not_make_october_stale(clock):
    center("alpha")
    record(call("1.00", team="alpha"))
    statements_run(period=october())

    clock.shift(timedelta(minutes=1))
    apply({"fx_rates": [{"currency": "EUR", "date": "2026-11-01", "rate": "1.10"}]})

    assert statement_issue(statement_id=drafts()["alpha"].id, actor=None).number


def test_issuing_a_draft_deleted_by_a_rerun_is_not_found():
    alpha, beta = center("alpha"), center("beta")
    rule("feature", "search", alpha)
    record(call("1.00", feature="search"))
    statements_run(period=october())
    draft = drafts()["alpha"]

    move_rule("search", beta)
    assert statements_run(period=october()).removed == ["alpha"]

    with pytest.raises(StatementNotFound) as raised:
        statement_issue(statement_id=draft.id, actor=None)
    assert (raised.value.status_code, raised.value.code) == (404, "statement_not_found")


# --- 3. shared pools are checked --------------------------------------------------------------


def pool_errors(**fields) -> dict[str, list[str]]:
    fields.setdefault("code", "rent")
    fields.setdefault("name", "Rent")
    fields.setdefault("amount", Decimal("100.00"))
    fields.setdefault("method", SharedCostPool.Method.FIXED)
    with pytest.raises(ValidationError) as raised:
        SharedCostPool(**fields).full_clean()
    return raised.value.message_dict


@pytest.fixture
def centers():
    return center("alpha"), center("beta")


@pytest.mark.usefixtures("centers")
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"shares": {"alpha": "60", "beta": "30"}}, "shares", "the shares sum to 90, not 100"),
        ({"shares": {"alpha": 60, "beta": "40.01"}}, "shares", "the shares sum to 100.01"),
        (
            {"shares": {"alpha": "50", "ghost": "50"}},
            "shares",
            "shares.ghost: no cost center has this code",
        ),
        ({"shares": {"alpha": "lots", "beta": "50"}}, "shares", "shares.alpha: 'lots' is not"),
        ({"shares": {"alpha": [50], "beta": "50"}}, "shares", "shares.alpha: [50] is not"),
        ({"shares": {"alpha": "-10", "beta": "110"}}, "shares", "shares.alpha: -10 must be"),
        ({"shares": {"alpha": "NaN", "beta": "100"}}, "shares", "shares.alpha: NaN must be"),
        ({"shares": {}}, "shares", "a fixed pool needs shares"),
        ({"shares": ["alpha", "beta"]}, "shares", "must be a mapping"),
        (
            {"method": SharedCostPool.Method.EVEN, "shares": {"alpha": "100"}},
            "shares",
            "only a fixed pool has shares, not even",
        ),
        (
            {"method": SharedCostPool.Method.DIRECT_COST, "amount": Decimal("-0.01")},
            "amount",
            "-0.01 must be at least 0",
        ),
    ],
    ids=[
        "sum-90",
        "sum-100.01",
        "unknown-code",
        "not-a-number",
        "a-list",
        "negative",
        "nan",
        "empty",
        "not-a-mapping",
        "shares-on-even",
        "negative-amount",
    ],
)
def test_a_pool_that_cannot_be_allocated_is_refused_naming_the_problem(fields, field, message):
    errors = pool_errors(**fields)

    assert field in errors, errors
    assert any(message in m for m in errors[field]), errors[field]


@pytest.mark.usefixtures("centers")
def test_a_valid_fixed_pool_and_a_valid_even_pool_pass():
    SharedCostPool(
        code="rent",
        name="Rent",
        amount=Decimal("100.00"),
        method=SharedCostPool.Method.FIXED,
        shares={"alpha": "62.5", "beta": 37.5},
    ).full_clean()
    SharedCostPool(
        code="ops", name="Ops", amount=Decimal(0), method=SharedCostPool.Method.EVEN
    ).full_clean()


# --- 5. issuing locks prices; the admin keeps the lock ----------------------------------------


@pytest.fixture
def issued_october(clock):
    """October priced by the 2026-01-01 book and issued: the book is locked through 10-31."""
    apply(price_book("2026-01-01"))
    center("alpha")
    record(call("1.00", team="alpha"))
    statements_run(period=october())
    statement_issue(statement_id=drafts()["alpha"].id, actor=None)
    version = PriceBookVersion.objects.get()
    assert version.locked_at is not None
    assert version.locked_through == OCT_LAST
    return version


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@percall.test", "pw")
    client.force_login(user)
    return client


def fx_add(staff, day: str, rate: str = "1.25"):
    return staff.post(
        reverse("admin:catalog_fxrate_add"), {"currency": "EUR", "date": day, "rate": rate}
    )


@pytest.mark.usefixtures("issued_october")
def test_the_admin_refuses_an_fx_rate_on_a_locked_day_and_accepts_a_later_one(staff):
    refused = fx_add(staff, "2026-10-15")
    last_locked = fx_add(staff, "2026-10-31")
    accepted = fx_add(staff, "2026-11-02")

    assert refused.status_code == 403
    assert last_locked.status_code == 403
    assert accepted.status_code == 302, accepted.content
    assert list(FxRate.objects.values_list("currency", "date", "rate")) == [
        ("EUR", date(2026, 11, 2), Decimal("1.25"))
    ]


def test_the_admin_refuses_an_fx_rate_on_a_day_locked_directly(staff):
    PriceBookVersion.objects.create(
        effective_from=date(2026, 1, 1), locked_through=OCT_LAST, content_hash="x"
    )

    assert fx_add(staff, "2026-10-15").status_code == 403
    assert fx_add(staff, "2026-11-01").status_code == 302
    assert list(FxRate.objects.values_list("date", flat=True)) == [date(2026, 11, 1)]


@pytest.mark.usefixtures("issued_october")
def test_the_admin_refuses_to_move_an_fx_rate_onto_a_locked_day(staff):
    assert fx_add(staff, "2026-11-02").status_code == 302
    rate = FxRate.objects.get()
    change = reverse("admin:catalog_fxrate_change", args=[rate.pk])

    moved = staff.post(change, {"currency": "EUR", "date": "2026-10-20", "rate": "1.25"})

    assert moved.status_code == 403
    rate.refresh_from_db()
    assert rate.date == date(2026, 11, 2)


@pytest.mark.usefixtures("issued_october")
def test_fx_rates_cannot_be_deleted_in_the_admin(staff):
    assert fx_add(staff, "2026-11-02").status_code == 302
    rate = FxRate.objects.get()
    delete = reverse("admin:catalog_fxrate_delete", args=[rate.pk])

    assert staff.get(delete).status_code == 403
    assert staff.post(delete, {"post": "yes"}).status_code == 403
    bulk = staff.post(
        reverse("admin:catalog_fxrate_changelist"),
        {"action": "delete_selected", "_selected_action": [rate.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302)
    assert FxRate.objects.filter(pk=rate.pk).exists()


def version_add(staff, effective_from: str):
    return staff.post(
        reverse("admin:catalog_pricebookversion_add"),
        {
            "effective_from": effective_from,
            "note": "admin",
            "prices-TOTAL_FORMS": "0",
            "prices-INITIAL_FORMS": "0",
            "prices-MIN_NUM_FORMS": "0",
            "prices-MAX_NUM_FORMS": "1000",
        },
    )


@pytest.mark.usefixtures("issued_october")
def test_the_admin_refuses_a_price_book_version_from_a_locked_day(staff):
    assert version_add(staff, "2026-10-15").status_code == 403
    accepted = version_add(staff, "2026-11-02")

    assert accepted.status_code == 302, accepted.content
    assert sorted(PriceBookVersion.objects.values_list("effective_from", flat=True)) == [
        date(2026, 1, 1),
        date(2026, 11, 2),
    ]


def test_a_locked_version_cannot_be_deleted_in_the_admin(staff, issued_october):
    delete = reverse("admin:catalog_pricebookversion_delete", args=[issued_october.pk])

    assert staff.post(delete, {"post": "yes"}).status_code == 403
    assert PriceBookVersion.objects.filter(pk=issued_october.pk).exists()
