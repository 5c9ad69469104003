"""Each leakage category planted in an otherwise clean month yields exactly its one finding,
with quantity and amount at risk computed by hand; the clean month yields none."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.assurance.models import Finding
from apps.assurance.services.scans import leakage_scan
from apps.billing.models import CreditDebit, Invoice, InvoiceLine
from apps.billing.services.runs import billing_run
from apps.metering.models import UsageRollup
from tests.assurance.leakage_setup import (
    BILLED_AT,
    NOW,  # noqa: F401  (the clock fixture reads it)
    OCTOBER,
    RECEIVED,
    calls,
    clean_acme,
    event,
    send,
    subscribe,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture(autouse=True)
def catalog(db):
    from tests.assurance.leakage_setup import catalog_load

    catalog_load()


def findings() -> list[tuple[str, str, str, Decimal, Decimal, str]]:
    return [
        (f.category, f.tenant.external_id, f.subject, f.quantity, f.amount_at_risk, f.basis)
        for f in Finding.objects.select_related("tenant").order_by("category", "subject")
    ]


def test_a_clean_month_has_no_findings(make_tenant):
    acme = clean_acme(make_tenant)
    invoice = Invoice.objects.get(tenant=acme, period_start__month=10)
    assert (invoice.status, invoice.subtotal_amount, invoice.credits_applied_amount) == (
        "finalized",
        Decimal("54.00"),
        Decimal("10.00"),
    )

    scan = leakage_scan(period_start=OCTOBER)

    assert findings() == []
    assert sum(scan.counts.values()) == 0 and set(scan.counts) == set(Finding.Category.values)


def test_usage_without_a_subscription(make_tenant):
    clean_acme(make_tenant)
    make_tenant("ghost")
    send(calls(3, tenant="ghost"))

    leakage_scan(period_start=OCTOBER)

    # 3 calls of 0.01 each: 0.03 at cost
    assert findings() == [
        ("no_subscription", "ghost", "", Decimal(3), Decimal("0.03"), "cost"),
    ]
    finding = Finding.objects.get()
    assert finding.currency == "USD" and len(finding.evidence["sample_event_ids"]) == 3


def test_usage_before_a_subscription_started_mid_month(make_tenant):
    clean_acme(make_tenant)
    late = make_tenant("late")
    subscribe(late, start=datetime(2026, 10, 15, tzinfo=UTC))
    # two calls before the 15th, one after; 0.01 each
    send([*calls(2, tenant="late", day=10), *calls(1, tenant="late", day=20)], at=RECEIVED)
    billing_run(as_of=BILLED_AT)

    leakage_scan(period_start=OCTOBER)

    # 2 of late's 3 calls are uncovered: 2/3 of its 0.03 of cost = 0.02
    assert findings() == [("no_subscription", "late", "", Decimal(2), Decimal("0.02"), "cost")]


def test_events_no_meter_measures(make_tenant):
    clean_acme(make_tenant, extra=[event("webhook.sent", cost="0.02") for _ in range(4)])

    leakage_scan(period_start=OCTOBER)

    # 4 events of a type without a meter, 0.02 each: 0.08 at cost
    assert findings() == [("unpriced", "acme", "webhook.sent", Decimal(4), Decimal("0.08"), "cost")]


def test_child_spans_of_an_unmetered_type_are_how_a_call_was_served_not_usage(make_tenant):
    # Given two traced webhook sends: one a child span of a call's trace, one a trace's root
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    child = event("webhook.sent", cost="0.02", trace_id=trace, span_id="00f067aa0ba902b7",
                  parent_span_id="00f067aa0ba902b8")  # fmt: skip
    root = event("webhook.sent", cost="0.02", trace_id=trace, span_id="00f067aa0ba902b8")
    clean_acme(make_tenant, extra=[child, root])

    leakage_scan(period_start=OCTOBER)

    # Then only the root is a call nothing prices: 1 event at 0.02; the child is telemetry
    assert findings() == [("unpriced", "acme", "webhook.sent", Decimal(1), Decimal("0.02"), "cost")]
    assert Finding.objects.get().evidence["sample_event_ids"] == [root["id"]]


def test_a_meter_the_rate_card_does_not_charge(make_tenant):
    clean_acme(make_tenant, extra=[event("job.run", cost="0.25", quantity="7") for _ in range(2)])

    leakage_scan(period_start=OCTOBER)

    # the jobs meter has no charge on std-card: 2 events, 2 x 0.25 = 0.50 at cost
    assert findings() == [("unpriced", "acme", "job.run", Decimal(2), Decimal("0.50"), "cost")]


def test_late_events_of_a_finalized_period(make_tenant):
    acme = clean_acme(make_tenant)
    send(calls(5, day=30))  # received now, after October's invoice was issued

    leakage_scan(period_start=OCTOBER)

    # calls: (35 - 10 free) x 0.10 = 2.50 now, 2.00 billed: 5 calls and 0.50 at list price
    assert findings() == [
        ("late_unbilled", "acme", "calls", Decimal(5), Decimal("0.50"), "list_price")
    ]
    finding = Finding.objects.get()
    assert finding.currency == "USD"
    assert finding.evidence["late_events"] == 5 and len(finding.evidence["sample_event_ids"]) == 5
    assert finding.evidence["billed_quantity"] == "30"
    assert Invoice.objects.filter(tenant=acme).count() == 1


def test_late_events_billed_as_an_adjustment_are_not_leakage(make_tenant):
    clean_acme(make_tenant)
    send(calls(5, day=30))
    leakage_scan(period_start=OCTOBER)
    assert Finding.objects.get().status == "open"

    # November's invoice bills October's late calls as an adjustment
    billing_run(as_of=datetime(2026, 12, 1, 2, tzinfo=UTC))
    leakage_scan(period_start=OCTOBER)

    finding = Finding.objects.get()
    assert (finding.status, finding.status_by) == ("resolved", "scan")
    assert finding.status_reason == "no longer found by the scan"


def test_an_invoice_that_disagrees_with_its_usage(make_tenant):
    acme = clean_acme(make_tenant)
    # a rating bug billed 28 calls: (28 - 10) x 0.10 = 1.80
    InvoiceLine.objects.filter(invoice__tenant=acme, meter_code="calls").update(
        quantity=Decimal(28), amount=Decimal("1.80")
    )

    leakage_scan(period_start=OCTOBER)

    # no event arrived after the invoice: 30 - 28 = 2 calls, 2.00 - 1.80 = 0.20 at list price
    assert findings() == [
        ("quantity_mismatch", "acme", "calls", Decimal(2), Decimal("0.20"), "list_price")
    ]


def test_rollups_that_disagree_with_raw_events(make_tenant):
    acme = clean_acme(make_tenant)
    row = UsageRollup.objects.filter(tenant_id=acme.id, event_type="api.call").first()
    UsageRollup.objects.filter(id=row.id).update(events=row.events - 1)

    leakage_scan(period_start=OCTOBER)

    # one event the rollup lost, at acme's average cost per call: 0.40 / 32 = 0.0125
    assert findings() == [
        ("quantity_mismatch", "acme", "rollup", Decimal(1), Decimal("0.0125"), "cost")
    ]
    hours = Finding.objects.get().evidence["hours"]
    assert hours == [{"hour": "2026-10-05T12:00:00+00:00", "raw": 32, "rolled_up": 31}]


def test_credits_the_ledger_and_the_invoice_see_differently(make_tenant):
    acme = clean_acme(make_tenant)
    # the ledger debited 8.00 where the invoice applied 10.00
    CreditDebit.objects.filter(invoice__tenant=acme).update(amount=Decimal("8.00"))

    leakage_scan(period_start=OCTOBER)

    # 10.00 - 8.00 = 2.00 of credits applied and never consumed
    assert findings() == [("credit_drift", "acme", "", Decimal(2), Decimal("2.00"), "list_price")]


def test_a_tenant_that_costs_more_than_it_earns(make_tenant):
    clean_acme(make_tenant, extra=[event("llm.call", cost="60.00", input_tokens=1000)])

    leakage_scan(period_start=OCTOBER)

    # revenue 50.00 + (30 - 10) x 0.10 + 3,000 x 0.001 = 55.00; cost 0.30 + 0.10 + 60.00
    # = 60.40: 5.40 at cost over 33 calls
    assert findings() == [
        ("negative_margin", "acme", "", Decimal(33), Decimal("5.40"), "cost"),
    ]


def test_a_loss_below_the_margin_floor_is_no_finding(make_tenant, settings):
    # cost 0.30 + 0.10 + 55.50 = 55.90 against revenue 55.00 (as above): 0.90 lost, under
    # the default floor of 1.00; with the floor at 0.50 it is a finding of 0.90
    clean_acme(make_tenant, extra=[event("llm.call", cost="55.50", input_tokens=1000)])

    leakage_scan(period_start=OCTOBER)
    assert findings() == []

    settings.PERCALL_LEAKAGE_MARGIN_FLOOR = "0.50"
    leakage_scan(period_start=OCTOBER)
    assert findings() == [("negative_margin", "acme", "", Decimal(33), Decimal("0.90"), "cost")]


def test_usage_far_beyond_its_free_units_rated_at_zero(make_tenant):
    clean_acme(make_tenant)
    freebie = make_tenant("freebie")
    subscribe(freebie, plan="starter")
    send(calls(150, tenant="freebie"), at=RECEIVED)
    billing_run(as_of=BILLED_AT)

    leakage_scan(period_start=OCTOBER)

    # 150 calls against 10 free at 0.00: 140 beyond; 150 x 0.01 = 1.50 of cost, 140/150 of
    # it = 1.40 (revenue 5.00 keeps the margin positive)
    assert findings() == [
        ("over_plan_at_zero", "freebie", "calls", Decimal(140), Decimal("1.40"), "cost")
    ]


def test_calls_nothing_costs(make_tenant):
    clean_acme(make_tenant, extra=[event("api.call", cost=None) for _ in range(2)])

    leakage_scan(period_start=OCTOBER)

    # 2 calls without a cost of their own and no price book: unknown cost, 0 at risk
    assert findings() == [("uncosted", "acme", "api.call", Decimal(2), Decimal(0), "cost")]
    assert len(Finding.objects.get().evidence["sample_event_ids"]) == 2


PREMIUM = {
    "meters": [
        {
            "code": "premium-calls",
            "event_type": "api.call",
            "aggregation": "count",
            "filter": {"properties.tier": "premium"},
        }
    ],
    "rate_cards": [
        {
            "code": "premium-card",
            "currency": "USD",
            "effective_from": "2026-01-01T00:00:00Z",
            "charges": [{"meter": "premium-calls", "model": "per_unit", "unit_price": "1.00"}],
        }
    ],
    "plans": [
        {
            "code": "premium",
            "name": "Premium",
            "interval": "month",
            "base_fee": "20.00",
            "rate_card": "premium-card",
        }
    ],
}


def test_events_outside_every_charge_filter_read_from_raw_events(make_tenant):
    import json

    from apps.catalog.services.apply import catalog_apply
    from apps.catalog.services.document import catalog_parse

    catalog_apply(doc=catalog_parse(content=json.dumps(PREMIUM)))
    clean_acme(make_tenant)
    vip = make_tenant("vip")
    subscribe(vip, plan="premium")
    premium = [event(tenant="vip", properties={"tier": "premium"}) for _ in range(2)]
    send([*premium, *calls(3, tenant="vip")], at=RECEIVED)
    billing_run(as_of=BILLED_AT)

    leakage_scan(period_start=OCTOBER)

    # 3 of vip's 5 calls match no charge's filter: 3 x 0.01 = 0.03 at cost
    assert findings() == [("unpriced", "vip", "api.call", Decimal(3), Decimal("0.03"), "cost")]
    evidence = Finding.objects.get().evidence
    assert (evidence["events"], evidence["priced_events"]) == (5, 2)
    assert len(evidence["sample_event_ids"]) == 3


def test_an_hour_split_by_a_half_hour_offset_is_one_months_on_both_sides(make_tenant):
    # Kolkata is UTC+05:30: its October ends at 18:30 UTC on 31 October, inside the UTC hour
    # 18:00, which starts in October and so is October's, raw events and rollup alike.
    from datetime import date

    from apps.assurance.detectors.usage import rollup_mismatch
    from apps.assurance.scope import scan_scope

    make_tenant("kolkata", timezone_name="Asia/Kolkata")
    late = [event(tenant="kolkata", day=31, timestamp="2026-10-31T18:45:00Z") for _ in range(3)]
    send([*late, event(tenant="kolkata", day=31, hour=17)])

    assert rollup_mismatch(scope=scan_scope(month=OCTOBER)) == []
    assert rollup_mismatch(scope=scan_scope(month=date(2026, 11, 1))) == []
