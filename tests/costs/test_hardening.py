"""Repricing in small transactions ends, and re-costs every stale (tenant, day) once, however
many tenants share a day; the catalog export shows the price book to operator keys only."""

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
import yaml

from apps.costs.models import CostDay, CostRollup
from apps.costs.services import rollup
from apps.costs.services.rollup import cost_days_reprice, cost_rollup_pending_run
from apps.metering.services.rollup import rollup_pending_run
from tests.costs import traffic as t
from tests.metering.ingesting import ingest_events

NOW = datetime(2026, 11, 2, tzinfo=UTC)
OCT3, OCT5, OCT7 = date(2026, 10, 3), date(2026, 10, 5), date(2026, 10, 7)
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture
def three_tenants(make_tenant):
    """a, b and c each make one gpt-x call (1000 input) and one 0.10 EUR call on 10-05; a also
    on 10-07, b also on 10-03. Costed with the traffic price book (gpt-x input 2.00) and FX
    (EUR 1.10 from 09-01, 1.20 from 10-06)."""
    tenants = {name: make_tenant(name) for name in ("a", "b", "c")}
    t.catalog_load()
    days = [("a", OCT5), ("b", OCT5), ("c", OCT5), ("a", OCT7), ("b", OCT3)]
    events = []
    for name, day in days:
        at = f"{day.isoformat()}T10:00:00Z"
        events.append(t.event(name, "llm.call", at, **t.gpt(input_tokens=1000, output_tokens=0)))
        events.append(
            t.event(
                name,
                "api.call",
                at,
                provider="transco",
                endpoint="translate",
                cost="0.10",
                cost_currency="EUR",
                external=True,
            )
        )
    ingest_events(*events, backfill=True)
    rollup_pending_run()
    cost_rollup_pending_run()
    assert CostDay.objects.count() == 5
    return tenants


@pytest.fixture
def batches(monkeypatch):
    """The pairs each repricing transaction rebuilt; more than 50 transactions is a loop that
    would never end."""
    seen: list[list] = []
    rebuild = rollup.cost_days_rebuild

    def counted(*, pairs, prices=None):
        seen.append(list(pairs))
        assert len(seen) <= 50, "cost_days_reprice does not terminate"
        return rebuild(pairs=pairs, prices=prices)

    monkeypatch.setattr(rollup, "cost_days_rebuild", counted)
    return seen


def cost_of(tenant, day: date, provider: str) -> D:
    return CostRollup.objects.get(tenant=tenant, day=day, provider=provider).cost


@pytest.mark.parametrize("limit", [1, 2])
def test_a_new_price_book_version_reprices_every_tenant_of_a_day_in_small_batches(
    three_tenants, batches, limit
):
    # gpt-x input doubles from 10-05: a, b and c on 10-05 and a on 10-07; not b on 10-03
    t.catalog_load(
        {
            "price_book": [
                *t.PRICE_BOOK["price_book"],
                {
                    "effective_from": "2026-10-05",
                    "llm": [
                        {"provider": "openai", "model": "gpt-x", "input": "4.00", "output": "16.00"}
                    ],
                },
            ]
        }
    )

    assert cost_days_reprice(limit=limit) == 4
    assert cost_days_reprice(limit=limit) == 0

    assert all(len(pairs) <= limit for pairs in batches)
    rebuilt = [p for pairs in batches for p in pairs]
    a, b, c = (three_tenants[n].id for n in ("a", "b", "c"))
    assert len(rebuilt) == 4  # each once
    assert set(rebuilt) == {(a, OCT5), (b, OCT5), (c, OCT5), (a, OCT7)}
    new, old = 1000 * D("4.00") / t.M, 1000 * D("2.00") / t.M  # 0.004, 0.002
    for name in ("a", "b", "c"):
        assert cost_of(three_tenants[name], OCT5, "openai") == new
    assert cost_of(three_tenants["a"], OCT7, "openai") == new
    assert cost_of(three_tenants["b"], OCT3, "openai") == old


@pytest.mark.parametrize("limit", [1, 2])
def test_a_changed_fx_rate_reprices_every_tenant_of_a_day_in_small_batches(
    three_tenants, batches, limit
):
    # EUR at 1.30 from 10-05: 10-05 changes (was 1.10); 10-07 keeps 1.20 from 10-06; 10-03 too
    t.catalog_load({"fx_rates": [{"currency": "EUR", "date": "2026-10-05", "rate": "1.30"}]})

    assert cost_days_reprice(limit=limit) == 3
    assert cost_days_reprice(limit=limit) == 0

    assert all(len(pairs) <= limit for pairs in batches)
    assert len(batches) == -(-3 // limit)  # 3 pairs: 3 transactions of 1, or 2 of up to 2
    for name in ("a", "b", "c"):
        assert cost_of(three_tenants[name], OCT5, "transco") == D("0.10") * D("1.30")  # 0.13
    assert cost_of(three_tenants["a"], OCT7, "transco") == D("0.10") * D("1.20")  # 0.12
    assert cost_of(three_tenants["b"], OCT3, "transco") == D("0.10") * D("1.10")  # 0.11


def test_nothing_stale_reprices_nothing(three_tenants, batches):
    assert cost_days_reprice(limit=1) == 0
    assert batches == []


# --- 6. the catalog export and the price book -------------------------------------------------


@pytest.fixture
def catalog(db):
    t.catalog_load(t.BILLING)


def test_a_tenant_key_does_not_see_the_price_book_or_fx_rates(catalog, make_tenant, make_key, api):
    reader = api(make_key(scopes=("read",), tenant=make_tenant("acme")))

    response = reader.get("/api/v1/catalog")

    assert response.status_code == 200, response.content
    body = response.json()
    assert "price_book" not in body
    assert "fx_rates" not in body
    assert [p["code"] for p in body["plans"]] == ["eur", "jpy", "usd"]


def test_the_yaml_export_of_a_tenant_key_has_no_price_book(catalog, make_tenant, make_key, api):
    reader = api(make_key(scopes=("read",), tenant=make_tenant("acme")))

    as_yaml = reader.get("/api/v1/catalog", {"format": "yaml"})

    assert as_yaml.status_code == 200, as_yaml.content
    exported = yaml.safe_load(as_yaml.content)
    assert "plans" in exported
    assert "price_book" not in exported and "fx_rates" not in exported


def test_an_operator_key_sees_the_price_book_and_fx_rates(catalog, make_key, api):
    operator = api(make_key(scopes=("read",)))

    body = operator.get("/api/v1/catalog").json()

    assert [v["effective_from"] for v in body["price_book"]] == ["2026-01-01"]
    assert [(r["currency"], r["date"], r["rate"]) for r in body["fx_rates"]] == [
        ("EUR", "2026-09-01", "1.1"),
        ("EUR", "2026-10-06", "1.2"),
    ]
