"""Invoices over time: credits with expiry, late events inside and after the grace period,
void and reissue, plan changes and cancellations, idempotent runs. Amounts by hand."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from apps.billing.errors import BillingInvalid, InvoiceNotDraft
from apps.billing.models import CreditDebit, CreditGrant, Invoice
from apps.billing.services.credits import credit_grant_issue
from apps.billing.services.operations import (
    credit_note_issue,
    invoice_finalize,
    invoice_mark_paid,
    invoice_void,
)
from apps.billing.services.runs import billing_run
from apps.billing.services.subscriptions import subscription_cancel, subscription_plan_change
from apps.catalog.selectors import plan_get
from tests.billing.billing_setup import catalog_load, event, invoice_of, lines_of, send, subscribe

NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)
SEP = datetime(2026, 9, 1, tzinfo=UTC)
OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture(autouse=True)
def catalog(db):
    catalog_load()


def grant(tenant, amount: str, *, expires: datetime | None, at: datetime = SEP) -> CreditGrant:
    return credit_grant_issue(
        tenant_id=tenant.id,
        currency=tenant.currency,
        amount=Decimal(amount),
        effective_at=at,
        expires_at=expires,
        reason="test",
    )


def test_credits_from_two_grants_earliest_expiry_first_expired_ones_unused(make_tenant):
    # given growth (99.00, 20 % tax) and three grants: 50.00 that expired on 20 October,
    # 30.00 expiring in December, 100.00 that never expires
    acme = make_tenant("acme", tax_rate="0.2")
    subscribe(acme, "growth", OCT)
    expired = grant(acme, "50.00", expires=datetime(2026, 10, 20, tzinfo=UTC))
    soon = grant(acme, "30.00", expires=DEC)
    forever = grant(acme, "100.00", expires=None)

    billing_run(as_of=NOV + timedelta(hours=2))

    # then 30.00 comes from the grant expiring first and 69.00 from the other
    invoice = invoice_of(acme, OCT)
    assert (invoice["subtotal"], invoice["credits_applied"], invoice["tax"], invoice["total"]) == (
        "99.00",
        "99.00",
        "0.00",
        "0.00",
    )
    remaining = {g.id: g.remaining_amount for g in CreditGrant.objects.all()}
    assert remaining == {expired.id: Decimal(50), soon.id: Decimal(0), forever.id: Decimal(31)}
    debits = sorted(
        (d.grant_id, d.amount) for d in CreditDebit.objects.filter(invoice_id=invoice["id"])
    )
    assert debits == sorted([(soon.id, Decimal(30)), (forever.id, Decimal(69))])


def test_tax_applies_to_what_credits_leave(make_tenant):
    # 99.00 - 40.00 of credits = 59.00 taxed at 20 % = 11.80
    acme = make_tenant("acme", tax_rate="0.2")
    subscribe(acme, "growth", OCT)
    grant(acme, "40.00", expires=None)

    billing_run(as_of=NOV + timedelta(hours=2))

    invoice = invoice_of(acme, OCT)
    assert (invoice["credits_applied"], invoice["tax"], invoice["total"]) == (
        "40.00",
        "11.80",
        "70.80",
    )


def test_void_refunds_credits_exactly_once_and_a_reissue_gets_a_new_number(make_tenant):
    acme = make_tenant("acme")
    subscribe(acme, "growth", OCT)
    credit = grant(acme, "60.00", expires=None)
    billing_run(as_of=NOV + timedelta(hours=2))
    first = Invoice.objects.get(tenant=acme)
    assert (first.number, first.credits_applied_amount) == ("PC-2026-000001", Decimal(60))

    # when it is voided and reissued
    draft = invoice_void(invoice_id=first.id, reason="wrong plan", reissue=True)

    # then the void keeps its number, the credits are back, and a draft takes its place
    first.refresh_from_db()
    assert (first.status, first.number, first.void_reason) == (
        "void",
        "PC-2026-000001",
        "wrong plan",
    )
    assert CreditGrant.objects.get(id=credit.id).remaining_amount == Decimal(60)
    assert (draft.status, draft.reissue_of_id, draft.period_start) == ("draft", first.id, OCT)
    with pytest.raises(InvoiceNotDraft):
        invoice_void(invoice_id=first.id, reason="again")
    refunds = CreditDebit.objects.filter(invoice=first, kind="refund")
    assert [r.amount for r in refunds] == [Decimal(60)]

    # and the reissue, finalized, takes the credits again under the next number
    reissued = invoice_finalize(invoice_id=draft.id)
    assert (reissued.number, reissued.credits_applied_amount) == ("PC-2026-000002", Decimal(60))
    assert CreditGrant.objects.get(id=credit.id).remaining_amount == Decimal(0)


def test_a_finalized_invoice_never_changes(make_tenant):
    acme = make_tenant("acme")
    subscribe(acme, "calls", OCT)
    send(event("acme", "api.call", "2026-10-05T10:00:00Z"))
    billing_run(as_of=NOV + timedelta(hours=2))
    invoice = Invoice.objects.get(tenant=acme)
    frozen = (invoice.total_amount, list(invoice.lines.values_list("amount", flat=True)))

    # when more October usage arrives and runs repeat
    send(event("acme", "api.call", "2026-10-06T10:00:00Z"))
    billing_run(as_of=NOV + timedelta(hours=3))
    billing_run(as_of=NOV + timedelta(hours=4))

    invoice.refresh_from_db()
    assert (invoice.total_amount, list(invoice.lines.values_list("amount", flat=True))) == frozen
    with pytest.raises(InvoiceNotDraft):
        invoice_finalize(invoice_id=invoice.id)
    assert Invoice.objects.filter(tenant=acme).count() == 1


def test_late_events_inside_the_grace_period_land_on_the_draft(make_tenant, clock):
    acme = make_tenant("acme")
    subscribe(acme, "calls", OCT)
    send(*[event("acme", "api.call", "2026-10-30T10:00:00Z") for _ in range(3)])

    # 30 minutes after October ends: a draft of 3 calls
    billing_run(as_of=NOV + timedelta(minutes=30))
    draft = invoice_of(acme, OCT)
    assert (draft["status"], draft["subtotal"]) == ("draft", "3.00")

    # a late October event arrives; the next run refreshes the draft
    send(event("acme", "api.call", "2026-10-31T23:50:00Z"))
    billing_run(as_of=NOV + timedelta(minutes=50))
    assert invoice_of(acme, OCT)["subtotal"] == "4.00"

    # past the one-hour grace period it is finalized with all four
    billing_run(as_of=NOV + timedelta(minutes=65))
    final = invoice_of(acme, OCT)
    assert (final["status"], final["subtotal"], final["number"]) == (
        "finalized",
        "4.00",
        "PC-2026-000001",
    )


def test_late_events_after_finalization_are_an_adjustment_on_the_next_invoice(make_tenant):
    acme = make_tenant("acme")
    subscribe(acme, "calls", OCT)
    send(*[event("acme", "api.call", "2026-10-30T10:00:00Z") for _ in range(3)])
    billing_run(as_of=NOV + timedelta(hours=2))
    october = invoice_of(acme, OCT)

    # when one more October call and two November calls arrive
    send(event("acme", "api.call", "2026-10-31T12:00:00Z"))
    send(*[event("acme", "api.call", "2026-11-02T10:00:00Z") for _ in range(2)])
    with time_machine.travel(DEC + timedelta(hours=1), tick=False):
        billing_run(as_of=DEC + timedelta(hours=2))

    # then October stays as it was and November bills the late call as an adjustment
    assert invoice_of(acme, OCT)["subtotal"] == october["subtotal"] == "3.00"
    november = invoice_of(acme, NOV)
    assert lines_of(november) == [
        ("usage", "calls", "2", "2.00"),
        ("adjustment", f"Late usage for 2026-10 ({october['number']}): calls", "1", "1.00"),
    ]
    assert november["lines"][1]["adjusts_period_start"] == OCT.isoformat()
    assert november["subtotal"] == "3.00"


def test_an_adjustment_is_billed_once_however_often_the_next_runs_come(make_tenant):
    acme = make_tenant("acme")
    subscribe(acme, "calls", OCT)
    send(event("acme", "api.call", "2026-10-30T10:00:00Z"))
    billing_run(as_of=NOV + timedelta(hours=2))
    send(event("acme", "api.call", "2026-10-31T12:00:00Z"))  # late for October
    with time_machine.travel(DEC + timedelta(hours=1), tick=False):
        billing_run(as_of=DEC + timedelta(minutes=10))  # November draft, in grace
        billing_run(as_of=DEC + timedelta(minutes=20))
        billing_run(as_of=DEC + timedelta(hours=2))  # finalized

    november = invoice_of(acme, NOV)
    assert [line[0] for line in lines_of(november)] == ["usage", "adjustment"]
    assert november["subtotal"] == "1.00"  # 0 November calls + the 1 late October call


def test_a_plan_change_takes_effect_at_the_next_period(make_tenant):
    acme = make_tenant("acme")
    subscription = subscribe(acme, "growth", OCT)
    subscription_plan_change(
        subscription_id=subscription.id, plan=plan_get(code="metered"), at=OCT + timedelta(days=9)
    )

    billing_run(as_of=DEC + timedelta(hours=2))

    assert invoice_of(acme, OCT)["plan"] == "growth"
    assert invoice_of(acme, OCT)["subtotal"] == "99.00"
    assert invoice_of(acme, NOV)["plan"] == "metered"
    assert invoice_of(acme, NOV)["subtotal"] == "0.00"


def test_a_plan_in_another_currency_is_refused(make_tenant):
    acme = make_tenant("acme")
    subscription = subscribe(acme, "growth", OCT)

    with pytest.raises(BillingInvalid) as caught:
        subscription_plan_change(subscription_id=subscription.id, plan=plan_get(code="yen"))

    assert caught.value.field == "plan"
    with pytest.raises(BillingInvalid):
        subscribe(make_tenant("yen-co", currency="JPY"), "growth", OCT)


def test_cancel_at_period_end_and_immediately(make_tenant):
    # growth canceled on 10 October at period end: October is the last invoice
    at_end = make_tenant("at-end")
    subscription = subscribe(at_end, "growth", OCT)
    subscription_cancel(subscription_id=subscription.id, at=OCT + timedelta(days=9))
    # pro canceled immediately on 10 October at noon: 10 of 31 days are billed
    now = make_tenant("now")
    immediate = subscribe(now, "pro", OCT)
    subscription_cancel(
        subscription_id=immediate.id, immediately=True, at=datetime(2026, 10, 10, 12, tzinfo=UTC)
    )

    billing_run(as_of=DEC + timedelta(hours=2))

    assert Invoice.objects.filter(tenant=at_end).count() == 1
    assert invoice_of(at_end, OCT)["subtotal"] == "99.00"
    final = invoice_of(now, OCT)
    assert final["period_end"] == "2026-10-10T12:00:00+00:00"
    # 310 x 10 / 31 = 100.00; commitment 100 x 10 / 31 = 32.258... -> 32.26, all of it true-up
    assert lines_of(final) == [
        ("base_fee", "Pro base fee (10 of 31 days)", None, "100.00"),
        *[line for line in lines_of(final) if line[0] == "usage"],
        ("minimum", "Minimum commitment true-up (commitment 32.26, usage 0.00)", None, "32.26"),
    ]
    assert final["status"] == "finalized"
    assert Invoice.objects.filter(tenant=now).count() == 1


def test_runs_catch_up_over_missed_periods_in_order(make_tenant):
    acme = make_tenant("acme")
    subscribe(acme, "growth", SEP)

    report = billing_run(as_of=DEC + timedelta(hours=2))

    numbers = list(Invoice.objects.order_by("period_start").values_list("period_start", "number"))
    assert numbers == [
        (SEP, "PC-2026-000001"),
        (OCT, "PC-2026-000002"),
        (NOV, "PC-2026-000003"),
    ]
    assert report.finalized == 3
    assert billing_run(as_of=DEC + timedelta(hours=3)).finalized == 0


def test_a_yearly_plan_bills_calendar_years(make_tenant):
    acme = make_tenant("acme")
    subscribe(acme, "yearly", datetime(2026, 7, 1, tzinfo=UTC))

    billing_run(as_of=datetime(2027, 1, 1, 2, tzinfo=UTC))

    invoice = Invoice.objects.get(tenant=acme)
    assert invoice.period_end == datetime(2027, 1, 1, tzinfo=UTC)
    # 1 July to 31 December: 184 of 365 days; 1200 x 184 / 365 = 604.93...
    assert invoice.lines.get(kind="base_fee").amount == Decimal("604.93")


def test_mark_paid_and_credit_notes(make_tenant):
    acme = make_tenant("acme")
    subscribe(acme, "growth", OCT)
    billing_run(as_of=NOV + timedelta(hours=2))
    invoice = Invoice.objects.get(tenant=acme)

    note = credit_note_issue(invoice_id=invoice.id, amount=Decimal("9.00"), reason="outage")
    with pytest.raises(BillingInvalid) as too_much:
        credit_note_issue(invoice_id=invoice.id, amount=Decimal("90.01"), reason="more")
    paid = invoice_mark_paid(invoice_id=invoice.id)

    assert (note.number, note.amount) == ("CN-2026-000001", Decimal("9.00"))
    assert too_much.value.field == "amount"  # 99.00 - 9.00 = 90.00 left
    assert paid.status == "paid"
    with pytest.raises(InvoiceNotDraft):
        invoice_void(invoice_id=invoice.id, reason="paid already")


def test_a_version_changed_while_pricing_is_caught_when_it_is_locked():
    from apps.catalog.errors import CatalogChanged
    from apps.catalog.models import RateCardVersion
    from apps.catalog.services.locks import rate_card_versions_lock

    version = RateCardVersion.objects.get(rate_card__code="per-call")

    with pytest.raises(CatalogChanged):
        rate_card_versions_lock(
            version_period_starts={version.id: OCT}, priced_hashes={version.id: "stale"}
        )
    version.refresh_from_db()
    assert version.locked_at is None
    rate_card_versions_lock(
        version_period_starts={version.id: OCT}, priced_hashes={version.id: version.content_hash}
    )
    version.refresh_from_db()
    assert version.locked_through == OCT


def test_a_run_prices_a_chunk_again_when_its_prices_changed(make_tenant, monkeypatch):
    from apps.billing.services import invoices
    from apps.catalog.errors import CatalogChanged

    acme = make_tenant("acme")
    subscribe(acme, "calls", OCT)
    send(event("acme", "api.call", "2026-10-05T10:00:00Z"))
    real = invoices.rate_card_versions_lock
    calls = []

    def changed_once(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise CatalogChanged("changed meanwhile")
        return real(**kwargs)

    monkeypatch.setattr(invoices, "rate_card_versions_lock", changed_once)
    # A run's chunk is a durable transaction; inside the test's own, a savepoint stands in.
    from django.db import transaction

    real_atomic = transaction.atomic
    monkeypatch.setattr(
        transaction, "atomic", lambda *args, durable=False, **kwargs: real_atomic(*args, **kwargs)
    )

    report = billing_run(as_of=NOV + timedelta(hours=2))

    assert len(calls) == 2
    assert (report.finalized, report.problems) == (1, [])
    assert Invoice.objects.filter(tenant=acme).count() == 1
    assert invoice_of(acme, OCT)["number"] == "PC-2026-000001"
