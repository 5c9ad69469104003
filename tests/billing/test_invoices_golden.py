"""Golden invoices: usage sent through ingestion, rolled up, billed by a billing run, and read
as the API shows it. Every expected amount is worked out by hand in the test."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from apps.billing.services.runs import billing_run
from tests.billing.billing_setup import catalog_load, event, invoice_of, lines_of, send, subscribe

NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)
OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
AFTER_GRACE = NOV + timedelta(hours=2)
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture(autouse=True)
def catalog(db):
    catalog_load()


def test_every_pricing_model_on_one_invoice(make_tenant):
    # given a USD tenant taxed at 20 % on the growth plan for all of October
    acme = make_tenant("acme", tax_rate="0.2")
    subscribe(acme, "growth", OCT)
    a = "acme"
    send(
        # 1,000,050 units over two batches
        event(a, "job.run", "2026-10-02T10:00:00Z", quantity="600000"),
        event(a, "job.run", "2026-10-15T10:00:00Z", quantity="400050"),
        # 1,234,567 gpt-4o tokens and 3,000,000 mini tokens
        event(a, "llm.call", "2026-10-03T09:00:00Z", model="gpt-4o", input_tokens=1000000),
        event(a, "llm.call", "2026-10-04T09:00:00Z", model="gpt-4o", input_tokens=234567),
        event(a, "llm.call", "2026-10-05T09:00:00Z", model="mini", input_tokens=3000000),
        # seats: 4, then 7 (the latest)
        event(a, "seat.count", "2026-10-03T00:00:00Z", quantity="4"),
        event(a, "seat.count", "2026-10-20T00:00:00Z", quantity="7"),
    )
    users = ["u1", "u2", "u3"]
    send(
        *[
            event(a, "api.call", f"2026-10-{10 + n:02d}T08:00:00Z", properties={"user_id": u})
            for n, u in enumerate(users * 6)
        ][:17]
    )

    # when the run closes October, after the grace period
    report = billing_run(as_of=AFTER_GRACE)

    # then one finalized invoice with a line per charge, each rounded once
    assert (report.finalized, report.problems) == (1, [])
    invoice = invoice_of(acme, OCT)
    assert invoice["status"] == "finalized"
    assert invoice["number"] == "PC-2026-000001"
    assert lines_of(invoice) == [
        ("base_fee", "Growth base fee", None, "99.00"),
        # 100,000 at 0 + 900,000 at 0.0002 (180) + 50 at 0.0001 (0.005) + flat 5 = 185.005
        ("usage", "units", "1000050", "185.01"),
        # 1,234,567 x 2.50 / 1,000,000 = 3.0864175
        ("usage", "tokens (model gpt-4o)", "1234567", "3.09"),
        # 3,000,000 x 0.15 / 1,000,000 = 0.45
        ("usage", "tokens (model mini)", "3000000", "0.45"),
        # 3 users reach the second tier: 3 x 0.80
        ("usage", "users", "3", "2.40"),
        # 17 calls, 5 free: 12 -> 2 started packages of 10 at 0.50
        ("usage", "calls", "17", "1.00"),
        # the latest seat count, 7, at 12.00
        ("usage", "seats", "7", "84.00"),
    ]
    tiers = invoice["lines"][1]["tiers"]
    assert [(t["tier"], t["quantity"], t["amount"]) for t in tiers] == [
        (1, "100000", "0"),
        (2, "900000", "180"),
        (3, "50", "5.005"),
    ]
    # 99 + 185.01 + 3.09 + 0.45 + 2.40 + 1.00 + 84.00 = 374.95; tax 20 % = 74.99
    assert (invoice["subtotal"], invoice["credits_applied"], invoice["tax"], invoice["total"]) == (
        "374.95",
        "0.00",
        "74.99",
        "449.94",
    )


@pytest.mark.parametrize(
    ("units", "amount"),
    [
        # 900,000 at 0.0002 = 180; the third tier (and its flat fee) is not reached
        pytest.param("1000000", "180.00", id="exactly-at-the-bound"),
        # 899,999 at 0.0002 = 179.9998
        pytest.param("999999", "180.00", id="one-below"),
        # 180 + 1 at 0.0001 + the third tier's flat 5 = 185.0001
        pytest.param("1000001", "185.00", id="one-above"),
        pytest.param("100000", "0.00", id="free-tier-exactly"),
        # 1 unit at 0.0002
        pytest.param("100001", "0.00", id="one-into-the-second-tier"),
    ],
)
def test_tier_boundaries_on_an_invoice(make_tenant, units, amount):
    acme = make_tenant("acme")
    subscribe(acme, "metered", OCT)
    send(event("acme", "job.run", "2026-10-09T10:00:00Z", quantity=units))

    billing_run(as_of=AFTER_GRACE)

    invoice = invoice_of(acme, OCT)
    assert ("usage", "units", units, amount) in lines_of(invoice)
    assert invoice["subtotal"] == amount


def test_tiny_unit_prices_over_a_million_events_stay_exact(make_tenant):
    # 2,000 events of 500 units: 1,000,000 units at 0.000002 each = 2.00 exactly
    catalog_load_tiny()
    acme = make_tenant("acme")
    subscribe(acme, "tiny", OCT)
    for batch in range(4):
        send(
            *[
                event("acme", "job.run", f"2026-10-{batch + 5:02d}T10:00:00Z", quantity="500")
                for _ in range(500)
            ]
        )

    billing_run(as_of=AFTER_GRACE)

    assert lines_of(invoice_of(acme, OCT)) == [("usage", "units", "1000000", "2.00")]


def catalog_load_tiny() -> None:
    import json

    from apps.catalog.services.apply import catalog_apply
    from apps.catalog.services.document import catalog_parse

    catalog_apply(
        doc=catalog_parse(
            content=json.dumps(
                {
                    "rate_cards": [
                        {
                            "code": "tiny",
                            "currency": "USD",
                            "effective_from": "2026-01-01T00:00:00Z",
                            "charges": [
                                {"meter": "units", "model": "per_unit", "unit_price": "0.000002"}
                            ],
                        }
                    ],
                    "plans": [
                        {"code": "tiny", "name": "Tiny", "interval": "month", "rate_card": "tiny"}
                    ],
                }
            )
        )
    )


def test_yen_and_dinar_round_to_their_own_minor_units(make_tenant):
    yen = make_tenant("yen-co", currency="JPY", tax_rate="0.1")
    dinar = make_tenant("dinar-co", currency="KWD", tax_rate="0.05")
    subscribe(yen, "yen", OCT)
    subscribe(dinar, "dinar", OCT)
    for tenant in ("yen-co", "dinar-co"):
        send(*[event(tenant, "api.call", f"2026-10-0{n + 1}T10:00:00Z") for n in range(7)])

    billing_run(as_of=AFTER_GRACE)

    jpy = invoice_of(yen, OCT)
    # 7 calls x 0.5 = 3.5 -> 4; tax (1000 + 4) x 10 % = 100.4 -> 100
    assert lines_of(jpy) == [
        ("base_fee", "Yen base fee", None, "1000"),
        ("usage", "calls", "7", "4"),
    ]
    assert (jpy["subtotal"], jpy["tax"], jpy["total"]) == ("1004", "100", "1104")
    kwd = invoice_of(dinar, OCT)
    # 7 x 0.0125 = 0.0875 -> 0.088; tax (10.000 + 0.088) x 5 % = 0.5044 -> 0.504
    assert lines_of(kwd) == [
        ("base_fee", "Dinar base fee", None, "10.000"),
        ("usage", "calls", "7", "0.088"),
    ]
    assert (kwd["subtotal"], kwd["tax"], kwd["total"]) == ("10.088", "0.504", "10.592")


def test_a_first_partial_period_prorates_fee_and_commitment_and_trues_up(make_tenant):
    # given pro (310.00 a month, commitment 100.00) from 14 October 10:00
    acme = make_tenant("acme")
    subscribe(acme, "pro", datetime(2026, 10, 14, 10, tzinfo=UTC))
    send(*[event("acme", "api.call", "2026-10-20T10:00:00Z") for _ in range(7)])

    billing_run(as_of=AFTER_GRACE)

    invoice = invoice_of(acme, datetime(2026, 10, 14, 10, tzinfo=UTC))
    assert invoice["period_end"] == "2026-11-01T00:00:00+00:00"
    lines = lines_of(invoice)
    # 14..31 October: 18 of 31 days; 310 x 18 / 31 = 180.00
    assert lines[0] == ("base_fee", "Pro base fee (18 of 31 days)", None, "180.00")
    # 7 calls, 5 free: 1 package of 10 at 0.50
    assert ("usage", "calls", "7", "0.50") in lines
    # commitment 100 x 18 / 31 = 58.0645... -> 58.06, less usage 0.50 = 57.56
    assert lines[-1] == (
        "minimum",
        "Minimum commitment true-up (commitment 58.06, usage 0.50)",
        None,
        "57.56",
    )
    assert invoice["subtotal"] == "238.06"  # 180.00 + 0.50 + 57.56


def test_a_trial_waives_the_base_fee_for_its_days(make_tenant):
    # 10 trial days from 1 October: the fee is due for 11..31 October, 21 of 31 days
    acme = make_tenant("acme")
    subscribe(acme, "trial-pro", OCT)

    billing_run(as_of=AFTER_GRACE)

    lines = lines_of(invoice_of(acme, OCT))
    # 310 x 21 / 31 = 210.00
    assert lines[0] == ("base_fee", "Trial Pro base fee (21 of 31 days)", None, "210.00")


def test_a_period_follows_the_tenants_timezone(make_tenant):
    # Asia/Kolkata is UTC+05:30: October there runs from 30 Sep 18:30 to 31 Oct 18:30 UTC
    acme = make_tenant("acme", timezone_name="Asia/Kolkata")
    start = datetime(2026, 9, 30, 18, 30, tzinfo=UTC)
    subscribe(acme, "calls", start)
    send(
        event("acme", "api.call", "2026-09-30T18:29:59.999Z"),  # September, local time
        event("acme", "api.call", "2026-09-30T18:30:00Z"),  # the first instant of October
        event("acme", "api.call", "2026-10-31T18:29:59.999Z"),  # the last of October
        event("acme", "api.call", "2026-10-31T18:30:00Z"),  # November, local time
        event("acme", "api.call", "2026-10-15T12:00:00Z"),
    )

    billing_run(as_of=datetime(2026, 11, 1, 3, tzinfo=UTC))

    invoice = invoice_of(acme, start)
    assert invoice["period_end"] == "2026-10-31T18:30:00+00:00"
    assert lines_of(invoice) == [("usage", "calls", "3", "3.00")]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # committed, as ingestion commits before rollups
def test_a_tiny_price_over_a_million_events_is_exact(make_tenant):
    """1,000,000 calls at 0.0000025 each = 2.50 exactly, through the rollups and meter
    aggregates of 744 hours (events written in one statement: ingesting a million one by one
    is what make bench measures, not what this test is about)."""
    from django.db import connection

    from apps.catalog.services.apply import catalog_apply
    from apps.catalog.services.document import catalog_parse
    from apps.metering.services.partitions import event_partitions_ensure
    from apps.metering.services.rollup import rollup_pending_run

    catalog_apply(
        doc=catalog_parse(
            content=json.dumps(
                {
                    "rate_cards": [
                        {
                            "code": "micro",
                            "currency": "USD",
                            "effective_from": "2026-01-01T00:00:00Z",
                            "charges": [
                                {"meter": "calls", "model": "per_unit", "unit_price": "0.0000025"}
                            ],
                        }
                    ],
                    "plans": [
                        {
                            "code": "micro",
                            "name": "Micro",
                            "interval": "month",
                            "rate_card": "micro",
                        }
                    ],
                }
            )
        )
    )
    acme = make_tenant("acme")
    subscribe(acme, "micro", OCT)
    event_partitions_ensure(months={(2026, 10)})
    with connection.cursor() as cursor:
        cursor.execute(
            'INSERT INTO metering_event (tenant_id, "timestamp", event_id, type, received_at, '
            "properties, backfill) SELECT %s, %s::timestamptz + (g %% 744) * interval '1 hour' "
            "+ (g %% 3600) * interval '1 second', 'm' || g, 'api.call', now(), '{}', true "
            "FROM generate_series(1, 1000000) AS g",
            [acme.id, OCT],
        )
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute(
            "INSERT INTO metering_rollup_pending (tenant_id, hour, marked_at) SELECT %s, "
            "%s::timestamptz + h * interval '1 hour', now() FROM generate_series(0, 743) AS h",
            [acme.id, OCT],
        )
    while rollup_pending_run():
        pass

    billing_run(as_of=AFTER_GRACE)

    assert lines_of(invoice_of(acme, OCT)) == [("usage", "calls", "1000000", "2.50")]
