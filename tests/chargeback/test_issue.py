"""Issuing statements: gapless numbers per month, issued statements never change, late cost
is reported rather than applied, corrections are new statements; issuing locks the price
book that priced the month."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from apps.catalog.errors import CatalogInUse
from apps.catalog.models import PriceBookVersion
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.chargeback.errors import StatementNotDraft, StatementNotIssued
from apps.chargeback.models import Statement
from apps.chargeback.selectors import statements_effective
from apps.chargeback.services.statements import (
    statement_correct,
    statement_issue,
    statements_run,
)
from apps.costs.selectors import cost_period_parse
from tests.chargeback.chargeback_setup import NOW, call, center, october, record, rule

__all__ = ["NOW"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
OCT = date(2026, 10, 1)


@pytest.fixture(autouse=True)
def tenant(make_tenant):
    return make_tenant("acme")


def drafted() -> dict[str, Statement]:
    statements_run(period=october())
    return {
        (s.cost_center.code if s.cost_center else ""): s
        for s in Statement.objects.filter(status=Statement.Status.DRAFT)
    }


def snapshot(statement: Statement) -> tuple:
    statement.refresh_from_db()
    return (
        statement.status,
        statement.number,
        statement.direct_amount,
        statement.allocated_amount,
        statement.total_amount,
        statement.calls,
        statement.updated_at,
        [(ln.position, ln.day, ln.amount, ln.exact_amount) for ln in statement.lines.all()],
    )


def test_issuing_numbers_statements_gaplessly_per_month(clock):
    center("alpha")
    center("beta")
    record(call("1.00", team="alpha"), call("2.00", team="beta"), call("3.00", feature="x"))
    drafts = drafted()

    first = statement_issue(statement_id=drafts["beta"].id, actor=None)
    with pytest.raises(StatementNotDraft):
        statement_issue(statement_id=drafts["beta"].id, actor=None)
    second = statement_issue(statement_id=drafts[""].id, actor=None)
    third = statement_issue(statement_id=drafts["alpha"].id, actor=None)

    assert [first.number, second.number, third.number] == [
        "SB-2026-10-0001",
        "SB-2026-10-0002",
        "SB-2026-10-0003",
    ]
    assert first.status == Statement.Status.ISSUED
    assert first.issued_at.isoformat() == "2026-11-02T00:00:00+00:00"


def test_each_month_has_its_own_sequence(clock):
    center("alpha")
    record(call("1.00", team="alpha"))
    october_statement = drafted()["alpha"]
    statement_issue(statement_id=october_statement.id, actor=None)
    record({**call("4.00", team="alpha"), "timestamp": "2026-11-01T08:00:00Z"})
    statements_run(period=cost_period_parse("2026-11"))
    november = Statement.objects.get(period_start=date(2026, 11, 1))

    issued = statement_issue(statement_id=november.id, actor=None)

    assert issued.number == "SB-2026-11-0001"
    assert issued.total_amount == Decimal("4.00")


def test_an_issued_statement_is_left_alone_and_late_cost_is_reported():
    center("alpha")
    center("beta")
    record(call("1.00", team="alpha"), call("2.00", team="beta"))
    drafts = drafted()
    alpha = statement_issue(statement_id=drafts["alpha"].id, actor=None)
    beta = statement_issue(statement_id=drafts["beta"].id, actor=None)
    before = snapshot(alpha)

    record(call("5.00", team="alpha", day=30))  # arrives after the month was issued
    report = statements_run(period=october())

    assert report.drafted == []
    assert report.issued_differs == ["alpha"]
    assert report.issued_unchanged == ["beta"]
    assert snapshot(alpha) == before
    assert alpha.total_amount == Decimal("1.00")
    assert Statement.objects.filter(cost_center=alpha.cost_center).count() == 1
    assert snapshot(beta)[4] == Decimal("2.00")


def test_a_rerun_without_changes_reports_every_issued_statement_unchanged():
    center("alpha")
    record(call("1.00", team="alpha"))
    statement_issue(statement_id=drafted()["alpha"].id, actor=None)

    report = statements_run(period=october())

    assert report.as_dict() == {
        "period": "2026-10",
        "drafted": [],
        "issued_unchanged": ["alpha"],
        "issued_differs": [],
        "removed": [],
    }


def test_a_correction_is_a_new_draft_that_references_the_issued_statement(clock):
    center("alpha", budget="10.00")
    record(call("1.00", team="alpha"))
    original = statement_issue(statement_id=drafted()["alpha"].id, actor=None)
    record(call("5.00", team="alpha", day=30))

    correction = statement_correct(statement_id=original.id, reason="late batch from vendor")

    assert correction.status == Statement.Status.DRAFT
    assert correction.corrects_id == original.id
    assert correction.correction_reason == "late batch from vendor"
    assert correction.number is None
    assert correction.total_amount == Decimal("6.00")
    assert correction.variance_amount == Decimal("4.00")
    original.refresh_from_db()
    assert (original.status, original.total_amount) == (Statement.Status.ISSUED, Decimal("1.00"))

    # a rerun refreshes the correction draft, not the issued statement
    record(call("0.50", team="alpha", day=31))
    report = statements_run(period=october())
    assert report.drafted == ["alpha"]
    correction.refresh_from_db()
    assert correction.total_amount == Decimal("6.50")

    # until it is issued, the issued one stands; afterwards the correction does
    assert [s.id for s in statements_effective(period_start=OCT)] == [original.id]
    clock.shift(timedelta(hours=1))
    issued = statement_issue(statement_id=correction.id, actor=None)
    assert issued.number == "SB-2026-10-0002"
    assert [s.id for s in statements_effective(period_start=OCT)] == [correction.id]


def test_only_an_issued_statement_can_be_corrected_and_only_once_at_a_time():
    center("alpha")
    record(call("1.00", team="alpha"))
    draft = drafted()["alpha"]

    with pytest.raises(StatementNotIssued):
        statement_correct(statement_id=draft.id, reason="too early")

    statement_issue(statement_id=draft.id, actor=None)
    statement_correct(statement_id=draft.id, reason="first")
    with pytest.raises(StatementNotDraft):
        statement_correct(statement_id=draft.id, reason="second")
    assert Statement.objects.count() == 2


def test_a_correction_to_zero_when_the_cost_moved_to_another_cost_center():
    alpha, beta = center("alpha"), center("beta")
    search = rule("feature", "search", alpha)
    record(call("4.00", feature="search"))
    original = statement_issue(statement_id=drafted()["alpha"].id, actor=None)
    search.cost_center = beta  # the search feature was beta's all along
    search.save()

    correction = statement_correct(statement_id=original.id, reason="search is beta's")

    assert correction.total_amount == Decimal("0.00")
    assert correction.lines.count() == 0


def test_a_stale_draft_is_cleared_when_its_cost_moves_to_another_cost_center():
    alpha = center("alpha")
    record(call("4.00", feature="search"))
    statements_run(period=october())  # an Unallocated draft of 4.00
    rule("feature", "search", alpha)

    statements_run(period=october())

    standing = {
        (s.cost_center.code if s.cost_center else ""): s.total_amount
        for s in statements_effective(period_start=OCT)
    }
    assert sum(standing.values()) == Decimal("4.00"), standing


PRICE_BOOK = """
price_book:
  - effective_from: 2026-01-01
    llm:
      - provider: openai
        model: gpt-4o
        input: {input}
        output: 10.00
"""


def test_issuing_locks_the_price_book_that_priced_the_month():
    catalog_apply(doc=catalog_parse(content=PRICE_BOOK.format(input="2.50")))
    center("alpha")
    # 1,000,000 input tokens at 2.50 and 100,000 output at 10.00 per million: 3.50
    record(call(None, team="alpha", input_tokens=1_000_000, output_tokens=100_000))
    draft = drafted()["alpha"]
    assert draft.total_amount == Decimal("3.50")
    version = PriceBookVersion.objects.get()
    assert version.locked_at is None

    statement_issue(statement_id=draft.id, actor=None)

    version.refresh_from_db()
    assert version.locked_at is not None
    assert version.locked_through == date(2026, 10, 31)
    with pytest.raises(CatalogInUse):
        catalog_apply(doc=catalog_parse(content=PRICE_BOOK.format(input="3.00")))
    # the same prices again are unchanged, not a change
    catalog_apply(doc=catalog_parse(content=PRICE_BOOK.format(input="2.50")))
    later = PRICE_BOOK.format(input="2.50") + (
        "  - effective_from: {day}\n    llm:\n      - provider: openai\n"
        "        model: gpt-4o\n        input: 3.00\n        output: 10.00\n"
    )
    with pytest.raises(CatalogInUse):
        catalog_apply(doc=catalog_parse(content=later.format(day="2026-10-15")))
    catalog_apply(doc=catalog_parse(content=later.format(day="2026-11-01")))
    assert PriceBookVersion.objects.count() == 2
