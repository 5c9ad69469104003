"""A billing run killed with SIGKILL half-way through many tenants: the broker gives its
message back, a restarted worker resumes after the committed chunks, and every tenant ends with
exactly one invoice for the period, its credits taken once, numbers without a gap (PostgreSQL
and Redis; a real Celery worker)."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.billing.models import CreditDebit, CreditGrant, Invoice, Subscription
from apps.billing.services.credits import credit_grant_issue
from apps.billing.services.subscriptions import subscription_create
from apps.catalog.selectors import plan_get
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from tests.metering.ingesting import ingest_events
from tests.workers import Worker, broker_clean, broker_unacked, task_send, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TENANTS = 120
CHUNK = 3  # subscriptions per committed chunk: 40 chunks
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
AS_OF = "2026-12-01T12:00:00+00:00"  # November ended, and its hour of grace is over
CATALOG = {
    "meters": [{"code": "calls", "event_type": "api.call", "aggregation": "count"}],
    "rate_cards": [
        {
            "code": "crash-card",
            "currency": "USD",
            "effective_from": "2026-01-01T00:00:00Z",
            "charges": [{"meter": "calls", "model": "per_unit", "unit_price": "0.10"}],
        }
    ],
    "plans": [
        {
            "code": "crash",
            "name": "Crash",
            "interval": "month",
            "base_fee": "10.00",
            "rate_card": "crash-card",
        }
    ],
}


def _calls(n: int) -> int:
    return 1 + n % 7


def _grant(n: int) -> Decimal:
    # Every fourth tenant holds more credit than its invoice: it pays 0 and keeps the rest.
    return Decimal("20.00") if n % 4 == 0 else Decimal("5.00")


@pytest.fixture
def worker():
    broker_clean()
    started: list[Worker] = []

    def start() -> Worker:
        started.append(Worker(queues="billing", PERCALL_BILLING_RUN_CHUNK=str(CHUNK)).start())
        return started[-1]

    yield start
    for w in started:
        w.close()
    broker_clean()


def test_a_billing_run_killed_mid_way_resumes_with_one_invoice_per_tenant_and_credits_once(
    make_tenant, worker
):
    # given 120 tenants on a plan of 10.00 a month plus 0.10 a call, each with 1 to 7 calls in
    # November (rolled up as they commit) and a credit grant of 5.00 or 20.00
    catalog_apply(doc=catalog_parse(content=json.dumps(CATALOG)))
    plan = plan_get(code="crash")
    events = []
    for n in range(TENANTS):
        tenant = make_tenant(f"tenant-{n:03d}")
        subscription_create(tenant=tenant, plan=plan, start=NOV)
        credit_grant_issue(
            tenant_id=tenant.id,
            currency="USD",
            amount=_grant(n),
            effective_at=datetime(2026, 10, 1, tzinfo=UTC),
            expires_at=None,
            reason="crash test",
        )
        events += [
            {
                "id": f"c{n}-{k}",
                "tenant": tenant.external_id,
                "type": "api.call",
                "timestamp": f"2026-11-{1 + k:02d}T10:00:00Z",
            }
            for k in range(_calls(n))
        ]
    ingest_events(*events, backfill=True)
    # and, by hand: subtotal 10.00 + 0.10 x calls; credits the smaller of grant and subtotal
    expected = {}
    for n in range(TENANTS):
        subtotal = Decimal("10.00") + Decimal("0.10") * _calls(n)
        credits = min(_grant(n), subtotal)
        expected[f"tenant-{n:03d}"] = (subtotal, credits, subtotal - credits)

    # when the run is sent as beat sends it, and its worker is killed after some chunks
    task_send("billing.billing_run", as_of=AS_OF)
    first = worker()
    wait_for(
        lambda: Invoice.objects.count() >= 2 * CHUNK,
        timeout=60,
        what=f"two chunks invoiced\n{first.tail()}",
        every=0.01,
    )
    first.kill()

    # then whole chunks are committed, the rest untouched, and the message is unacked
    done = Invoice.objects.count()
    assert 0 < done < TENANTS
    assert Invoice.objects.filter(status="finalized").count() == done
    assert Subscription.objects.filter(billed_through=DEC).count() == done
    assert CreditDebit.objects.values("invoice").distinct().count() == done
    assert broker_unacked("billing.billing_run") >= 1

    # when a worker starts again and the broker gives the message back (no re-send here)
    second = worker()
    wait_for(
        lambda: (
            Subscription.objects.filter(billed_through=DEC).count() == TENANTS
            and broker_unacked("billing.billing_run") == 0
        ),
        timeout=60,
        what=f"the redelivered run to finish\n{second.tail()}",
    )

    # then one invoice per tenant and period, numbered 1..120 without a gap or a repeat
    invoices = list(Invoice.objects.select_related("tenant"))
    assert len(invoices) == TENANTS
    assert {(i.tenant.external_id, i.period_start, i.period_end) for i in invoices} == {
        (t, NOV, DEC) for t in expected
    }
    assert sorted(i.number for i in invoices) == [f"PC-2026-{n:06d}" for n in range(1, 121)]
    # and each amount is the one worked out by hand
    assert {
        i.tenant.external_id: (i.subtotal_amount, i.credits_applied_amount, i.total_amount)
        for i in invoices
    } == expected
    assert {i.status for i in invoices} == {"finalized"}
    # and credits were taken once: one debit per invoice, grants down by exactly that
    debits = list(CreditDebit.objects.select_related("grant__tenant", "invoice"))
    assert len(debits) == TENANTS
    assert all(d.kind == "debit" and d.invoice.tenant_id == d.grant.tenant_id for d in debits)
    remaining = {
        g.tenant.external_id: g.remaining_amount
        for g in CreditGrant.objects.select_related("tenant")
    }
    assert remaining == {
        f"tenant-{n:03d}": _grant(n) - expected[f"tenant-{n:03d}"][1] for n in range(TENANTS)
    }
