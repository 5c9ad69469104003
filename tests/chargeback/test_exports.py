"""Exports of a month's statements: FOCUS 1.2 rows (mandatory columns, UTC times, sums per
sub account equal to the statements, corrections as delta rows), the GL CSV and the PDF."""

import csv
import io
import json
import re
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest

from apps.chargeback.models import Statement
from apps.chargeback.selectors import statement_get
from apps.chargeback.services.exports import focus_csv, focus_rows, gl_csv
from apps.chargeback.services.pdf import statement_pdf_bytes
from apps.chargeback.services.statements import (
    statement_correct,
    statement_issue,
    statements_run,
)
from tests.chargeback.chargeback_setup import NOW, call, center, october, pool, record, rule

__all__ = ["NOW"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
OCT = date(2026, 10, 1)
MANDATORY = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
)
RECOMMENDED = (
    "ConsumedQuantity",
    "ConsumedUnit",
    "SubAccountId",
    "SubAccountName",
    "Tags",
    "InvoiceId",
)
UTC_DAY = re.compile(r"^\d{4}-\d\d-\d\dT00:00:00Z$")


@pytest.fixture(autouse=True)
def tenant(make_tenant):
    return make_tenant("acme")


def month(clock) -> dict[str, Statement]:
    """alpha: 1.00 + 2.00 direct (api), beta 3.00 (batch), Unallocated 0.50, and a 10.00
    platform pool even over alpha and beta: alpha 8.00, beta 8.00, Unallocated 0.50.
    alpha is issued, then corrected by 1.50 more on the 6th and 0.25 on the 7th (9.75)."""
    center("alpha", name="Alpha team", gl_account="6100")
    center("beta", name="Beta team", gl_account="6200")
    record(
        call("1.00", team="alpha", service="api", day=5),
        call("2.00", team="alpha", service="api", day=6),
        call("3.00", team="beta", service="batch", day=5),
        call("0.50", feature="orphan"),
    )
    pool("platform", "10.00", "even", name="Platform")
    statements_run(period=october())
    alpha = statement_issue(
        statement_id=Statement.objects.get(cost_center__code="alpha").id, actor=None
    )
    record(
        call("1.50", team="alpha", service="api", day=6),
        call("0.25", team="alpha", service="api", day=7),
    )
    correction = statement_correct(statement_id=alpha.id, reason="late usage")
    clock.shift(timedelta(hours=1))
    correction = statement_issue(statement_id=correction.id, actor=None)
    return {"alpha": alpha, "correction": correction}


def parsed(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def sums_by(rows, key: str, amount: str) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        sums[row[key]] += Decimal(row[amount])
    return dict(sums)


def test_the_focus_csv_has_every_mandatory_column_then_the_custom_ones(clock):
    month(clock)

    header, rows = parsed(focus_csv(period_start=OCT))

    assert set(MANDATORY) <= set(header)
    assert set(RECOMMENDED) <= set(header)
    custom = [i for i, name in enumerate(header) if name.startswith("x_")]
    focus = [i for i, name in enumerate(header) if not name.startswith("x_")]
    assert custom and max(focus) < min(custom)
    assert rows and all(set(row) == set(header) for row in rows)


def test_focus_times_are_utc_midnights_with_exclusive_ends(clock):
    month(clock)

    rows = focus_rows(period_start=OCT)

    for row in rows:
        for column in (
            "BillingPeriodStart",
            "BillingPeriodEnd",
            "ChargePeriodStart",
            "ChargePeriodEnd",
        ):
            assert UTC_DAY.match(row[column]), (column, row[column])
        assert row["BillingPeriodStart"] == "2026-10-01T00:00:00Z"
        assert row["BillingPeriodEnd"] == "2026-11-01T00:00:00Z"
    day_five = [r for r in rows if r["SubAccountId"] == "beta" and r["ConsumedUnit"] == "Requests"]
    assert [(r["ChargePeriodStart"], r["ChargePeriodEnd"]) for r in day_five] == [
        ("2026-10-05T00:00:00Z", "2026-10-06T00:00:00Z")
    ]
    pooled = [r for r in rows if r["x_AllocationMethod"] == "even"]
    assert {(r["ChargePeriodStart"], r["ChargePeriodEnd"]) for r in pooled} == {
        ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
    }


def test_billed_cost_per_sub_account_equals_the_statement_that_stands(clock):
    month(clock)

    rows = focus_rows(period_start=OCT)

    assert sums_by(rows, "SubAccountId", "BilledCost") == {
        "alpha": Decimal("9.75"),
        "beta": Decimal("8.00"),
        "unallocated": Decimal("0.50"),
    }
    for cost in ("EffectiveCost", "ListCost", "ContractedCost"):
        assert sums_by(rows, "SubAccountId", cost) == sums_by(rows, "SubAccountId", "BilledCost")
    assert {r["BillingCurrency"] for r in rows} == {"USD"}
    assert {r["ChargeCategory"] for r in rows} == {"Usage"}
    assert {r["SubAccountName"] for r in rows} == {"Alpha team", "Beta team", "Unallocated"}


def test_a_correction_adds_delta_rows_of_class_correction(clock):
    statements = month(clock)

    rows = [r for r in focus_rows(period_start=OCT) if r["SubAccountId"] == "alpha"]

    original = [
        (r["ChargePeriodStart"][:10], r["ServiceName"], r["BilledCost"], r["InvoiceId"])
        for r in rows
        if r["ChargeClass"] == ""
    ]
    deltas = [
        (r["ChargePeriodStart"][:10], r["ServiceName"], r["BilledCost"], r["InvoiceId"])
        for r in rows
        if r["ChargeClass"] == "Correction"
    ]
    assert sorted(original) == [
        ("2026-10-01", "Platform", "5.00", "SB-2026-10-0001"),
        ("2026-10-05", "api", "1.00", "SB-2026-10-0001"),
        ("2026-10-06", "api", "2.00", "SB-2026-10-0001"),
    ]
    assert sorted(deltas) == [
        ("2026-10-06", "api", "1.50", "SB-2026-10-0002"),
        ("2026-10-07", "api", "0.25", "SB-2026-10-0002"),
    ]
    assert statements["correction"].number == "SB-2026-10-0002"
    assert {
        r["ChargeClass"] for r in focus_rows(period_start=OCT) if r["SubAccountId"] != "alpha"
    } == {""}


def test_a_correction_that_removes_cost_is_a_negative_delta(clock):
    alpha, beta = center("alpha"), center("beta")
    search = rule("feature", "search", alpha)
    record(call("4.00", feature="search", day=9), call("1.00", team="alpha", day=9))
    statements_run(period=october())
    original = statement_issue(statement_id=Statement.objects.get(cost_center=alpha).id, actor=None)
    search.cost_center = beta
    search.save()
    correction = statement_correct(statement_id=original.id, reason="search is beta's")
    clock.shift(timedelta(minutes=5))
    statement_issue(statement_id=correction.id, actor=None)

    rows = [r for r in focus_rows(period_start=OCT) if r["SubAccountId"] == "alpha"]

    assert sorted((r["ChargeClass"], r["x_Feature"], r["BilledCost"]) for r in rows) == [
        ("", "", "1.00"),
        ("", "search", "4.00"),
        ("Correction", "search", "-4.00"),
    ]
    assert sums_by(rows, "SubAccountId", "BilledCost") == {"alpha": Decimal("1.00")}


def test_focus_rows_describe_the_usage(clock):
    month(clock)

    rows = focus_rows(period_start=OCT)

    usage = next(r for r in rows if r["SubAccountId"] == "beta" and r["x_AllocationMethod"] == "")
    assert usage["ServiceCategory"] == "AI and Machine Learning"
    assert usage["ServiceSubcategory"] == "Generative AI"
    assert (usage["ProviderName"], usage["PublisherName"]) == ("openai", "openai")
    assert (usage["PricingQuantity"], usage["PricingUnit"]) == ("1", "Requests")
    assert (usage["ConsumedQuantity"], usage["ConsumedUnit"]) == ("1", "Requests")
    assert usage["x_GlAccount"] == "6200"
    assert usage["x_StatementStatus"] == "draft"
    assert usage["InvoiceId"] == ""
    assert json.loads(usage["Tags"]) == {"service": "batch"}
    assert usage["BillingAccountId"] == "percall-demo-operator"
    assert usage["InvoiceIssuerName"] == usage["BillingAccountName"] == "Percall demo operator"


def test_the_gl_csv_sums_to_each_statement(clock):
    month(clock)

    header, rows = parsed(gl_csv(period_start=OCT))

    assert header[:3] == ["period", "statement", "status"]
    assert sums_by(rows, "cost_center", "amount") == {
        "alpha": Decimal("9.75"),
        "beta": Decimal("8.00"),
        "unallocated": Decimal("0.50"),
    }
    alpha = {
        (r["kind"], r["description"]): r["amount"] for r in rows if r["cost_center"] == "alpha"
    }
    assert alpha == {("direct", "api"): "4.75", ("allocated", "Platform (even)"): "5.00"}
    assert {r["statement"] for r in rows if r["cost_center"] == "alpha"} == {"SB-2026-10-0002"}
    assert {r["gl_account"] for r in rows if r["cost_center"] == "beta"} == {"6200"}
    assert {r["period"] for r in rows} == {"2026-10"}


def test_a_month_without_statements_exports_only_headers():
    header, rows = parsed(focus_csv(period_start=OCT))

    assert set(MANDATORY) <= set(header)
    assert rows == []
    assert parsed(gl_csv(period_start=OCT))[1] == []


def test_the_statement_pdf_is_a_pdf(clock):
    statements = month(clock)

    for statement_id in (statements["alpha"].id, statements["correction"].id):
        content = statement_pdf_bytes(statement_get(statement_id=statement_id))
        assert content.startswith(b"%PDF")
