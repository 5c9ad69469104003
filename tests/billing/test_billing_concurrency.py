"""Billing under concurrency (PostgreSQL): runs at once make one invoice per subscription and
period with gapless numbers; finalizations at once never spend a credit twice."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from apps.billing.models import CreditDebit, CreditGrant, Invoice
from apps.billing.services.credits import credit_grant_issue
from apps.billing.services.operations import invoice_finalize
from apps.billing.services.runs import billing_run
from tests.billing.billing_setup import catalog_load, subscribe
from tests.concurrency import run_together

NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)
SEP = datetime(2026, 9, 1, tzinfo=UTC)
OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        catalog_load()
        yield


def test_concurrent_runs_make_one_invoice_per_period_with_gapless_numbers(make_tenant):
    # given 12 subscriptions from September: 24 periods to close
    for n in range(12):
        subscribe(make_tenant(f"t{n:02d}"), "growth", SEP)

    # when three runs close them at once, in chunks of 2 so that they interleave
    reports = run_together(*[lambda: billing_run(as_of=NOV + timedelta(hours=2), chunk=2)] * 3)

    # then every period has exactly one invoice, and the numbers run 1..24 without a gap
    assert Invoice.objects.count() == 24
    pairs = Invoice.objects.values_list("subscription_id", "period_start")
    assert len(set(pairs)) == 24
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == [f"PC-2026-{n:06d}" for n in range(1, 25)]
    assert sum(r.finalized for r in reports) == 24


def test_concurrent_finalizations_never_spend_more_than_a_grant_holds(make_tenant):
    # given one grant of 100.00 and two drafts of 99.00 each (September and October)
    acme = make_tenant("acme")
    subscribe(acme, "growth", SEP)
    credit = credit_grant_issue(
        tenant_id=acme.id,
        currency="USD",
        amount=Decimal("100.00"),
        effective_at=datetime(2026, 8, 1, tzinfo=UTC),
        expires_at=None,
        reason="test",
    )
    billing_run(as_of=NOV + timedelta(hours=2), grace=timedelta(days=90))
    drafts = list(Invoice.objects.filter(status="draft").order_by("period_start"))
    assert len(drafts) == 2

    # when both are finalized at once
    run_together(*[lambda d=d: invoice_finalize(invoice_id=d.id) for d in drafts])

    # then together they took exactly the 100.00, and the grant is at 0, never below
    applied = sorted(
        Invoice.objects.filter(status="finalized").values_list("credits_applied_amount", flat=True)
    )
    assert applied == [Decimal("1.00"), Decimal("99.00")]
    assert CreditGrant.objects.get(id=credit.id).remaining_amount == Decimal(0)
    spent = sum(CreditDebit.objects.filter(grant=credit).values_list("amount", flat=True))
    assert spent == Decimal(100)
