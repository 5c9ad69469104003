"""Revenue by the month a period starts in the tenant's own timezone: a Tokyo tenant's October
starts on 30 September UTC; void invoices do not count; an adjustment counts for the period it
adjusts, not the invoice it is on.

The invoices are written with the ORM: the selector only reads invoices and their lines, and
a late-usage adjustment through the billing run would need a whole finalize-then-late-event
cycle that the lifecycle tests already cover."""

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from apps.billing.models import Invoice, InvoiceLine
from apps.billing.selectors import revenue_lines

pytestmark = pytest.mark.django_db

OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
TOKYO_OCT = datetime(2026, 9, 30, 15, tzinfo=UTC)  # 2026-10-01T00:00+09:00
TOKYO_NOV = datetime(2026, 10, 31, 15, tzinfo=UTC)
TOKYO_DEC = datetime(2026, 11, 30, 15, tzinfo=UTC)
AFTER = datetime(2027, 1, 15, tzinfo=UTC)  # no preview: "now" is in neither month
_numbers = iter(range(1, 100))


def invoice(tenant, start, end, *lines, status=Invoice.Status.FINALIZED, kind=None) -> Invoice:
    """An invoice and its ``lines`` as (kind, amount, extra fields)."""
    created = Invoice.objects.create(
        tenant=tenant,
        currency=tenant.currency,
        period_start=start,
        period_end=end,
        status=status,
        number=None if status == Invoice.Status.DRAFT else f"INV-T-{next(_numbers):04d}",
        **({"kind": kind} if kind else {}),
    )
    for position, (line_kind, amount, extra) in enumerate(lines, start=1):
        InvoiceLine.objects.create(
            invoice=created,
            position=position,
            kind=line_kind,
            key=f"{line_kind}-{position}",
            description=line_kind,
            amount=D(amount),
            **extra,
        )
    return created


BASE, USAGE, ADJ = (
    InvoiceLine.Kind.BASE_FEE,
    InvoiceLine.Kind.USAGE,
    InvoiceLine.Kind.ADJUSTMENT,
)


@pytest.fixture
def invoices(make_tenant):
    tokyo = make_tenant("tokyo", currency="JPY", timezone_name="Asia/Tokyo")
    acme = make_tenant("acme")  # UTC
    # Tokyo, September (ends where October starts): not October's
    invoice(tokyo, datetime(2026, 8, 31, 15, tzinfo=UTC), TOKYO_OCT, (BASE, "1000", {}))
    # Tokyo, October: base fee and usage for feature chat
    invoice(
        tokyo,
        TOKYO_OCT,
        TOKYO_NOV,
        (BASE, "1000", {}),
        (USAGE, "250", {"meter_code": "calls", "dimensions": {"feature": "chat"}}),
    )
    # Tokyo, October, voided (its reissue is the one above): never counted
    invoice(tokyo, TOKYO_OCT, TOKYO_NOV, (BASE, "999", {}), status=Invoice.Status.VOID)
    # Tokyo, November (a draft, still counted for November) with October's late usage
    invoice(
        tokyo,
        TOKYO_NOV,
        TOKYO_DEC,
        (BASE, "1000", {}),
        (
            ADJ,
            "40",
            {
                "meter_code": "calls",
                "dimensions": {"feature": "chat"},
                "adjusts_period_start": TOKYO_OCT,
                "adjusts_period_end": TOKYO_NOV,
            },
        ),
        status=Invoice.Status.DRAFT,
    )
    # acme (UTC): October and November
    invoice(acme, OCT, NOV, (BASE, "10.00", {}), (USAGE, "2.35", {}))
    invoice(acme, NOV, DEC, (BASE, "10.00", {}), status=Invoice.Status.DRAFT)
    return tokyo, acme


def revenue(start, end) -> list[tuple]:
    """Revenue by (tenant, currency, feature, source): the selector may sum lines that share
    them, so the test compares sums."""
    sums: dict[tuple, D] = {}
    for r in revenue_lines(start=start, end=end, at=AFTER):
        key = (r.tenant_id.hex, r.currency, r.feature, r.source)
        sums[key] = sums.get(key, D(0)) + r.amount
    return sorted((t, c, f, amount, source) for (t, c, f, source), amount in sums.items())


def totals(start, end) -> dict[str, D]:
    out: dict[str, D] = {}
    for r in revenue_lines(start=start, end=end, at=AFTER):
        out[r.currency] = out.get(r.currency, D(0)) + r.amount
    return out


def test_october_counts_each_tenants_october_in_its_own_timezone(invoices):
    tokyo, acme = invoices

    assert revenue(OCT, NOV) == sorted(
        [
            (tokyo.id.hex, "JPY", "", D("1000"), "invoice"),
            (tokyo.id.hex, "JPY", "chat", D("290"), "invoice"),  # 250 + November's adjustment 40
            (acme.id.hex, "USD", "", D("12.35"), "invoice"),  # 10.00 + 2.35
        ]
    )
    # Tokyo: 1000 + 250 + 40 (not the void 999, not November's 1000, not September's 1000)
    assert totals(OCT, NOV) == {"JPY": D("1290"), "USD": D("12.35")}


def test_november_counts_novembers_invoices_without_octobers_adjustment(invoices):
    tokyo, acme = invoices

    assert revenue(NOV, DEC) == sorted(
        [
            (tokyo.id.hex, "JPY", "", D("1000"), "invoice"),
            (acme.id.hex, "USD", "", D("10.00"), "invoice"),
        ]
    )


def test_one_tenant_only(invoices):
    tokyo, _ = invoices

    lines = revenue_lines(start=OCT, end=NOV, tenant_id=tokyo.id, at=AFTER)

    assert sum(r.amount for r in lines) == D("1290")  # 1000 + 250 + 40
    assert {r.tenant_id for r in lines} == {tokyo.id}


def test_credit_purchases_are_not_subscription_revenue(invoices):
    _, acme = invoices
    invoice(
        acme,
        datetime(2026, 10, 10, tzinfo=UTC),
        datetime(2026, 10, 10, tzinfo=UTC),
        (InvoiceLine.Kind.CREDIT_PACK, "90.00", {}),
        kind=Invoice.Kind.CREDIT_PURCHASE,
    )

    assert totals(OCT, NOV) == {"JPY": D("1290"), "USD": D("12.35")}
