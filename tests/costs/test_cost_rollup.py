"""Cost rollups: every call class costed from its source (own cost at the day's FX rate, the
price book, or nothing), avoided cost of cache hits, workflow depth, idempotent reruns and
repricing after a price-book or FX change. Expected costs by hand in ``traffic``."""

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from apps.costs.models import CostDay, CostRollup, WorkflowDepth
from apps.costs.services.rollup import cost_days_rebuild, cost_days_reprice, cost_rollup_pending_run
from apps.metering.services.rollup import rollup_pending_run, rollup_rebuild
from tests.costs import traffic as t
from tests.metering.ingesting import ingest_events

NOW = datetime(2026, 11, 2, tzinfo=UTC)
OCT5, OCT6, SEP15 = date(2026, 10, 5), date(2026, 10, 6), date(2026, 9, 15)
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


def rows_of(tenant, **filters) -> set[tuple]:
    """The cost rows as (what, workflow, flags, source, counts, cost, avoided): ``what`` is
    "type provider/model-or-endpoint-or-service", flags H(it) W(asted) X(ternal), counts
    "events/retries/errors/traced/roots"."""
    out = set()
    for r in CostRollup.objects.filter(tenant=tenant, **filters):
        what = f"{r.event_type} {r.provider}/{r.model or r.endpoint or r.service}"
        flags = "".join(
            f for f, on in (("H", r.cache_hit), ("W", r.wasted), ("X", r.external)) if on
        )
        counts = f"{r.events}/{r.retries}/{r.errors}/{r.traced_calls}/{r.root_calls}"
        out.add((what, r.workflow, flags, r.source, counts, r.cost, r.avoided_cost))
    return out


def snapshot() -> list[str]:
    """Every cost row and workflow depth, without ids."""
    costs = CostRollup.objects.values_list()
    depths = WorkflowDepth.objects.values_list(
        "tenant_id", "day", "workflow", "runs", "calls", "max_depth"
    )
    return sorted(str(r[1:]) for r in costs) + sorted(map(str, depths))


@pytest.fixture
def tenants(make_tenant):
    return t.traffic_send(make_tenant)


def test_every_call_class_is_costed_from_its_source(tenants):
    acme = tenants["acme"]
    E, P, N = "event", "price_book", "none"
    S = "support"

    assert rows_of(acme, day=OCT5) == {
        ("http.request /gateway", S, "", P, "1/0/0/1/1", t.A1, 0),
        ("llm.call openai/gpt-x", S, "", P, "1/0/0/1/0", t.A2, 0),
        ("api.call searchco/search", S, "X", P, "1/0/0/1/0", t.A3, 0),
        # own cost 0.05 EUR on 10-05 at the latest rate on or before it (1.10 from 09-01)
        ("api.call transco/translate", S, "X", E, "1/0/0/1/0", t.A4, 0),
        # the retry (attempt 2) and the failed call (status 500) are wasted
        ("llm.call openai/gpt-x", S, "W", P, "1/1/0/1/0", t.A5, 0),
        ("llm.call openai/gpt-x", "", "W", P, "1/0/1/0/0", t.A6, 0),
        ("llm.call anthropic/claude-y", "", "H", P, "1/0/0/0/0", t.A7, t.A7_AVOIDED),
        ("llm.call local/mystery", "", "", N, "1/0/0/0/0", 0, 0),
    }
    assert rows_of(acme, day=OCT6) == {
        ("http.request /gateway", S, "", P, "1/0/0/1/1", t.B1, 0),
        ("llm.call openai/gpt-x", S, "", P, "1/0/0/1/0", t.B2, 0),
        # 0.05 EUR on 10-06 at that day's own rate 1.20
        ("api.call transco/translate", S, "X", E, "1/0/0/1/0", t.B3, 0),
        # own cost wins over the price book; avoided = uncached price-book cost - own cost
        ("llm.call anthropic/claude-y", "", "H", E, "1/0/0/0/0", t.B4, t.B4_AVOIDED),
        # GBP has no FX rate: uncosted, never guessed
        ("api.call mapsco/geocode", "", "X", N, "1/0/0/0/0", 0, 0),
    }
    assert rows_of(tenants["globex"]) == {
        ("llm.call openai/gpt-x", "", "", P, "1/0/0/0/0", t.G1, 0),
    }
    assert rows_of(acme, day=SEP15) == {
        ("http.request /gateway", S, "", P, "1/0/0/1/1", t.S1, 0),
        ("llm.call openai/gpt-x", S, "", P, "1/0/0/1/0", t.S2, 0),
        ("llm.call anthropic/claude-y", "", "H", P, "1/0/0/0/0", t.S3, t.S3_AVOIDED),
        ("api.call transco/translate", "", "X", E, "1/0/0/0/0", t.S4, 0),
    }


def test_the_hand_worked_costs_are_what_the_rows_hold(tenants):
    # the literal values of the Decimal expressions, so a slip in ``traffic`` shows too
    day1 = (t.A1, t.A2, t.A3, t.A4, t.A6, t.A7, t.A7_AVOIDED)
    day2 = (t.B1, t.B2, t.B3, t.B4_AVOIDED, t.G1)
    totals = (t.ACME_DAY1, t.ACME_DAY2, t.OCT_COST, t.SEP_COST)
    assert day1 == (
        D("0.00034"),
        D("0.0036"),
        D("0.032"),
        D("0.055"),
        D("0.001"),
        D("0.00345"),
        D("0.00405"),
    )
    assert day2 == (
        D("0.00026"),
        D("0.0056"),
        D("0.06"),
        D("0.001"),
        D("0.028"),
    )
    assert totals == (
        D("0.09899"),
        D("0.06786"),
        D("0.19485"),
        D("0.1134"),
    )
    costs = CostRollup.objects.filter(day__gte=date(2026, 10, 1)).values_list("cost", flat=True)
    assert sum(costs, D(0)) == D("0.19485")


def test_every_row_records_the_price_book_version_of_its_day(tenants):
    from apps.catalog.models import PriceBookVersion

    version = PriceBookVersion.objects.get()
    assert set(CostRollup.objects.values_list("price_book_version_id", flat=True)) == {version.id}
    assert set(CostDay.objects.values_list("tenant_id", "day")) == {
        (tenants["acme"].id, SEP15),
        (tenants["acme"].id, OCT5),
        (tenants["acme"].id, OCT6),
        (tenants["globex"].id, OCT6),
    }


def test_workflow_depth_counts_root_spans_calls_and_the_deepest_chain(tenants):
    depths = set(
        WorkflowDepth.objects.values_list(
            "tenant_id", "day", "workflow", "runs", "calls", "max_depth"
        )
    )
    acme = tenants["acme"].id
    # T1: A1 -> A2 -> A3 is 3 deep, with A4 and A5 under A1: 5 spans; T2: B1 -> B2, B3: 3 spans,
    # 2 deep; T3: S1 -> S2. Untraced calls and globex (no traces) make no runs.
    assert depths == {
        (acme, OCT5, "support", 1, 5, 3),
        (acme, OCT6, "support", 1, 3, 2),
        (acme, SEP15, "support", 1, 2, 2),
    }


def test_a_rerun_gives_the_same_rows(tenants):
    before = snapshot()

    # nothing queued: nothing rebuilt
    assert cost_rollup_pending_run() == 0
    # every hour of acme's 10-05 and 10-06 rolled up again queues those two days
    rollup_rebuild(
        tenant_id=tenants["acme"].id,
        start=datetime(2026, 10, 5, tzinfo=UTC),
        end=datetime(2026, 10, 7, tzinfo=UTC),
    )
    rollup_pending_run()
    assert cost_rollup_pending_run() == 2
    # and rebuilding a day directly, twice
    pairs = [(tenants["acme"].id, OCT5), (tenants["globex"].id, OCT6)]
    assert cost_days_rebuild(pairs=pairs) == 8 + 1
    assert cost_days_rebuild(pairs=pairs) == 8 + 1

    assert snapshot() == before
    assert CostRollup.objects.count() == 8 + 5 + 1 + 4


def test_a_late_event_rebuilds_only_its_day(tenants):
    acme = tenants["acme"]
    sept_and_day2 = rows_of(acme, day=SEP15) | rows_of(acme, day=OCT6)

    ingest_events(
        t.event(
            "acme", "llm.call", f"{t.DAY1}T23:59:59Z", **t.gpt(input_tokens=1000, output_tokens=200)
        )
    )
    rollup_pending_run()
    assert cost_rollup_pending_run() == 1

    # the late gpt-x call (attempt 1, untraced) joins nothing but its own class
    late = CostRollup.objects.get(tenant=acme, day=OCT5, model="gpt-x", workflow="", wasted=False)
    assert (late.events, late.cost) == (1, (1000 * D("2.00") + 200 * D("8.00")) / t.M)
    assert rows_of(acme, day=SEP15) | rows_of(acme, day=OCT6) == sept_and_day2


def test_external_calls_are_not_priced_at_the_compute_rate(tenants):
    # an external call through the gateway service: the compute rate prices internal work only
    ingest_events(
        t.event(
            "globex",
            "api.call",
            f"{t.DAY2}T12:00:00Z",
            service="gateway",
            external=True,
            latency_ms=50,
        ),
        t.event("globex", "rpc", f"{t.DAY2}T12:00:01Z", service="gateway", latency_ms=50),
    )
    rollup_pending_run()
    cost_rollup_pending_run()

    external = CostRollup.objects.get(tenant=tenants["globex"], event_type="api.call")
    internal = CostRollup.objects.get(tenant=tenants["globex"], event_type="rpc")
    assert (external.source, external.cost) == ("none", 0)
    assert (internal.source, internal.cost) == ("price_book", D("0.0001") + 50 * D("0.000002"))


def test_a_new_price_book_version_reprices_the_days_it_covers(tenants):
    acme, globex = tenants["acme"], tenants["globex"]
    sept_and_day1 = rows_of(acme, day=SEP15) | rows_of(acme, day=OCT5)

    # gpt-x doubles from 2026-10-06; claude-y, searchco and the gateway leave the book
    t.catalog_load(
        {
            "price_book": [
                *t.PRICE_BOOK["price_book"],
                {
                    "effective_from": "2026-10-06",
                    "llm": [
                        {"provider": "openai", "model": "gpt-x", "input": "4.00", "output": "16.00"}
                    ],
                },
            ]
        }
    )

    # the two (tenant, day) pairs of 10-06 are costed again, once
    assert cost_days_reprice() == 2
    assert cost_days_reprice() == 0

    assert rows_of(acme, day=SEP15) | rows_of(acme, day=OCT5) == sept_and_day1
    day2 = {(r[0], r[3], r[5], r[6]) for r in rows_of(acme, day=OCT6)}
    # B2 at 4.00 / 16.00: (300 + 100) x 4 + (100 + 500) x 16 = 1600 + 9600 per million
    assert day2 == {
        ("http.request /gateway", "none", 0, 0),  # the gateway is not in the new book
        ("llm.call openai/gpt-x", "price_book", (400 * D("4.00") + 600 * D("16.00")) / t.M, 0),
        ("api.call transco/translate", "event", t.B3, 0),
        # own cost stays; claude-y is unpriced now, so there is no avoided cost
        ("llm.call anthropic/claude-y", "event", t.B4, 0),
        ("api.call mapsco/geocode", "none", 0, 0),
    }
    g1 = CostRollup.objects.get(tenant=globex)
    assert g1.cost == (10000 * D("4.00") + 1000 * D("16.00")) / t.M  # 0.056
    from apps.catalog.models import PriceBookVersion

    new = PriceBookVersion.objects.get(effective_from=OCT6)
    assert g1.price_book_version_id == new.id


def test_a_new_fx_rate_reprices_only_the_days_it_changes(tenants):
    acme = tenants["acme"]
    others = rows_of(acme, day=SEP15) | rows_of(acme, day=OCT6)

    # EUR at 1.15 from 10-05: 10-05 changes; 10-06 has its own rate; September is before it
    t.catalog_load({"fx_rates": [{"currency": "EUR", "date": "2026-10-05", "rate": "1.15"}]})

    assert cost_days_reprice() == 1
    assert cost_days_reprice() == 0
    a4 = CostRollup.objects.get(tenant=acme, day=OCT5, provider="transco")
    assert a4.cost == D("0.05") * D("1.15")  # 0.0575
    assert rows_of(acme, day=SEP15) | rows_of(acme, day=OCT6) == others


def test_a_first_rate_for_a_currency_costs_its_calls(tenants):
    # GBP at 1.25 from 10-01: B5's own 1.00 GBP becomes 1.25 USD, from the event
    t.catalog_load({"fx_rates": [{"currency": "GBP", "date": "2026-10-01", "rate": "1.25"}]})

    # every pair from 10-01 has GBP in its prices now: acme on 10-05 and 10-06, globex on 10-06
    assert cost_days_reprice() == 3

    b5 = CostRollup.objects.get(tenant=tenants["acme"], provider="mapsco")
    assert (b5.source, b5.cost) == ("event", D("1.00") * D("1.25"))
    assert (
        CostRollup.objects.get(tenant=tenants["acme"], day=SEP15, provider="transco").cost == t.S4
    )


def test_only_cache_hits_have_avoided_cost(tenants):
    # own cost 0.001 below the book's 1000 x 2.00 / 1e6 = 0.002, but no cache hit: nothing avoided
    ingest_events(
        t.event(
            "globex",
            "llm.batch",
            f"{t.DAY2}T14:00:00Z",
            **t.gpt(input_tokens=1000),
            cost="0.001",
            cost_currency="USD",
        )
    )
    rollup_pending_run()
    cost_rollup_pending_run()

    row = CostRollup.objects.get(tenant=tenants["globex"], event_type="llm.batch")
    assert (row.source, row.cost, row.avoided_cost) == ("event", D("0.001"), 0)


def test_a_day_whose_raw_events_retention_purged_keeps_its_workflow_depths(tenants):
    # given 10-05's raw events gone and its hours marked purged, as retention leaves them
    from apps.metering.models import Event, RollupHour

    acme = tenants["acme"].id
    day = (datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 6, tzinfo=UTC))
    Event.objects.filter(tenant_id=acme, timestamp__gte=day[0], timestamp__lt=day[1]).delete()
    RollupHour.objects.filter(tenant_id=acme, hour__gte=day[0], hour__lt=day[1]).update(
        purged_at=NOW
    )
    costs_before = rows_of(tenants["acme"], day=OCT5)

    # when the day is costed again (a price-book change re-costs it)
    cost_days_rebuild(pairs=[(acme, OCT5), (acme, OCT6)])

    # then 10-05 keeps its depth (1 run, 5 calls, 3 deep) and its costs (from the rollups);
    # 10-06, with its raw events, is rebuilt as before
    depths = set(WorkflowDepth.objects.values_list("day", "runs", "calls", "max_depth"))
    assert {(OCT5, 1, 5, 3), (OCT6, 1, 3, 2)} <= depths
    assert rows_of(tenants["acme"], day=OCT5) == costs_before
