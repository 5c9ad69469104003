"""The price book and FX table of the catalog file: the shipped starter file, checks that name
the path, versions locked by an issued statement, and an export that applies back unchanged."""

import copy
import json
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest

import apps.catalog
from apps.catalog.errors import CatalogInUse, CatalogInvalid
from apps.catalog.models import FxRate, PriceBookVersion, UpstreamPrice
from apps.catalog.selectors import catalog_export
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.catalog.services.price_book import price_book_versions_lock

STARTER = Path(apps.catalog.__file__).parent / "starter" / "price_book_2026-12-01.yaml"
pytestmark = pytest.mark.django_db

# Already in the order the export lists prices (by provider, then model / endpoint / service),
# with every kind of price, fallbacks left out, and FX rates.
BOOK = {
    "price_book": [
        {
            "effective_from": "2026-01-01",
            "note": "list prices",
            "llm": [
                {
                    "provider": "anthropic",
                    "model": "claude-y",
                    "input": "3.00",
                    "output": "15.00",
                    "cache_read": "0.30",
                    "cache_write": "3.75",
                },
                {"provider": "openai", "model": "gpt-x", "input": "2.00", "output": "8.00"},
                {
                    "provider": "openai",
                    "model": "o-think",
                    "input": "1.10",
                    "output": "4.40",
                    "reasoning": "5.00",
                },
            ],
            "apis": [
                {"provider": "searchco", "endpoint": "search", "per_call": "0.002"},
                {"provider": "transco", "endpoint": "translate", "per_credit": "0.000000000001"},
            ],
            "compute": [{"service": "gateway", "per_request": "0.0001", "per_ms": "0.000002"}],
        }
    ],
    "fx_rates": [
        {"currency": "EUR", "date": "2026-09-01", "rate": "1.10"},
        {"currency": "EUR", "date": "2026-10-06", "rate": "1.2"},
        {"currency": "JPY", "date": "2026-09-01", "rate": "0.0067"},
    ],
}


def apply(content: str | dict):
    text = json.dumps(content) if isinstance(content, dict) else content
    return catalog_apply(doc=catalog_parse(content=text))


def book(**changes) -> dict:
    doc = copy.deepcopy(BOOK)
    for change in changes.values():
        change(doc)
    return doc


def test_the_starter_price_book_applies_and_a_second_apply_changes_nothing():
    report = apply(STARTER.read_text())

    assert report.sections["price_book"] == {
        "created": ["2026-01-01"],
        "updated": [],
        "unchanged": [],
    }
    version = PriceBookVersion.objects.get()
    assert version.effective_from == date(2026, 1, 1)
    assert version.note.startswith("Starter list prices")
    prices = {(p.provider, p.model): p for p in version.prices.all()}
    assert len(prices) == 23
    assert {p.kind for p in prices.values()} == {UpstreamPrice.Kind.LLM}
    opus = prices[("anthropic", "claude-opus-4-1")]
    # unquoted YAML decimals read exactly
    assert (
        opus.input_per_mtok,
        opus.output_per_mtok,
        opus.cache_read_per_mtok,
        opus.cache_write_per_mtok,
        opus.reasoning_per_mtok,
    ) == (D("15.00"), D("75.00"), D("1.50"), D("18.75"), None)
    nano = prices[("openai", "gpt-5-nano")]
    assert (nano.input_per_mtok, nano.cache_read_per_mtok, nano.cache_write_per_mtok) == (
        D("0.05"),
        D("0.005"),
        None,  # falls back to the input price when costing
    )
    assert prices[("mistral_ai", "mistral-large-latest")].cache_read_per_mtok is None
    hash_before, updated_before = version.content_hash, version.updated_at

    again = apply(STARTER.read_text())

    assert not again.changed
    assert again.sections["price_book"]["unchanged"] == ["2026-01-01"]
    version.refresh_from_db()
    assert (version.content_hash, version.updated_at) == (hash_before, updated_before)
    assert UpstreamPrice.objects.count() == 23


def test_a_price_book_with_every_kind_of_price_and_fx_rates():
    report = apply(BOOK)

    assert report.sections["price_book"]["created"] == ["2026-01-01"]
    assert report.sections["fx_rates"]["created"] == [
        "EUR@2026-09-01",
        "EUR@2026-10-06",
        "JPY@2026-09-01",
    ]
    api = UpstreamPrice.objects.get(kind="api", endpoint="translate")
    assert (api.provider, api.per_call, api.per_credit) == ("transco", None, D("1e-12"))
    compute = UpstreamPrice.objects.get(kind="compute")
    assert (compute.service, compute.per_request, compute.per_ms) == (
        "gateway",
        D("0.0001"),
        D("0.000002"),
    )
    think = UpstreamPrice.objects.get(model="o-think")
    assert think.reasoning_per_mtok == D("5.00")
    assert set(FxRate.objects.values_list("currency", "date", "rate")) == {
        ("EUR", date(2026, 9, 1), D("1.10")),
        ("EUR", date(2026, 10, 6), D("1.2")),
        ("JPY", date(2026, 9, 1), D("0.0067")),
    }
    assert not apply(BOOK).changed


def test_the_same_prices_written_differently_are_unchanged():
    apply(BOOK)

    def retype(doc):
        doc["price_book"][0]["llm"][1]["input"] = "2.0000"
        doc["fx_rates"][1]["rate"] = "1.20"

    report = apply(book(retype=retype))

    assert not report.changed


def test_a_changed_price_replaces_the_unlocked_version_and_a_changed_rate_updates():
    apply(BOOK)
    version_id = PriceBookVersion.objects.get().id

    def change(doc):
        doc["price_book"][0]["llm"][1]["output"] = "9.00"
        doc["price_book"][0]["compute"] = []
        doc["fx_rates"][0]["rate"] = "1.11"

    report = apply(book(change=change))

    assert report.sections["price_book"]["updated"] == ["2026-01-01"]
    assert report.sections["fx_rates"]["updated"] == ["EUR@2026-09-01"]
    assert PriceBookVersion.objects.get().id == version_id
    assert UpstreamPrice.objects.get(model="gpt-x").output_per_mtok == D("9.00")
    assert not UpstreamPrice.objects.filter(kind="compute").exists()
    assert FxRate.objects.get(currency="EUR", date=date(2026, 9, 1)).rate == D("1.11")


def _set(path: list, value):
    def change(doc):
        target = doc
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _update(path: list, **values):
    def change(doc):
        target = doc
        for part in path:
            target = target[part]
        target.update(values)

    return change


def _append(path: list, item):
    def change(doc):
        target = doc
        for part in path:
            target = target[part]
        target.append(copy.deepcopy(item))

    return change


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (_set(["price_book", 0, "llm", 1, "input"], "-0.01"), "price_book[0].llm[1].input"),
        (_set(["price_book", 0, "llm", 2, "reasoning"], "-1"), "price_book[0].llm[2].reasoning"),
        (_set(["price_book", 0, "llm", 2, "model"], "gpt-x"), "price_book[0].llm[2]"),
        (
            _update(["price_book", 0, "apis", 1], provider="searchco", endpoint="search"),
            "price_book[0].apis[1]",
        ),
        (
            _set(["price_book", 0, "apis", 0, "per_call"], "0.0000000000001"),
            "price_book[0].apis[0].per_call",
        ),
        (
            _set(["price_book", 0, "apis", 0, "per_call"], "1000000000000000000"),
            "price_book[0].apis[0].per_call",
        ),
        (_set(["price_book", 0, "apis", 0, "per_call"], None), "price_book[0].apis[0]"),
        (
            _set(["price_book", 0, "compute", 0, "per_ms"], "-0.5"),
            "price_book[0].compute[0].per_ms",
        ),
        (
            _append(["price_book", 0, "compute"], {"service": "gateway", "per_request": "1"}),
            "price_book[0].compute[1]",
        ),
        (
            _append(["price_book"], {"effective_from": "2026-01-01", "note": "again"}),
            "price_book[1].effective_from",
        ),
        (_set(["fx_rates", 0, "rate"], "0"), "fx_rates[0].rate"),
        (_set(["fx_rates", 0, "rate"], "-1.1"), "fx_rates[0].rate"),
        (_set(["fx_rates", 2, "currency"], "USD"), "fx_rates[2].currency"),
        (_set(["fx_rates", 2, "currency"], "XYZ"), "fx_rates[2].currency"),
        (_set(["fx_rates", 1, "date"], "2026-09-01"), "fx_rates[1]"),
        (_set(["fx_rates", 0, "rate"], "one"), "fx_rates[0].rate"),
        (_set(["price_book", 0, "llm", 0, "colour"], "red"), "price_book[0].llm[0]"),
    ],
)
def test_an_invalid_price_book_is_refused_whole_naming_the_path(change, path):
    with pytest.raises(CatalogInvalid) as error:
        apply(book(change=change))

    assert error.value.field == path
    assert error.value.message.startswith(f"{path}:")
    assert not PriceBookVersion.objects.exists()
    assert not FxRate.objects.exists()


def test_a_duplicate_model_says_where_it_first_appeared():
    def twice(doc):
        doc["price_book"][0]["llm"].append(
            {"provider": "openai", "model": "gpt-x", "input": "1", "output": "1"}
        )

    with pytest.raises(CatalogInvalid) as error:
        apply(book(twice=twice))

    assert error.value.field == "price_book[0].llm[3]"
    assert "openai/gpt-x appears twice (also price_book[0].llm[1])" in error.value.message


def lock(effective_from: date, through: date) -> PriceBookVersion:
    version = PriceBookVersion.objects.get(effective_from=effective_from)
    price_book_versions_lock(version_ids={version.id}, through=through)
    version.refresh_from_db()
    return version


def test_a_version_an_issued_statement_used_cannot_change():
    apply(BOOK)
    version = lock(date(2026, 1, 1), through=date(2026, 10, 31))
    assert (version.locked_at is not None, version.locked_through) == (True, date(2026, 10, 31))
    # the same content is still fine
    assert not apply(BOOK).changed

    def change(doc):
        doc["price_book"][0]["llm"][1]["output"] = "9.00"

    with pytest.raises(CatalogInUse) as error:
        apply(book(change=change))

    assert error.value.status_code == 409
    assert error.value.field == "price_book[0]"
    assert UpstreamPrice.objects.get(model="gpt-x").output_per_mtok == D("8.00")


def test_no_new_version_or_rate_may_reach_back_into_a_locked_day():
    apply(BOOK)
    lock(date(2026, 1, 1), through=date(2026, 10, 31))
    back = {"effective_from": "2026-10-31", "compute": [{"service": "gateway", "per_ms": "1"}]}

    with pytest.raises(CatalogInUse) as error:
        apply(book(add=_append(["price_book"], back)))
    assert error.value.field == "price_book[1].effective_from"

    with pytest.raises(CatalogInUse) as error:
        apply(
            book(
                add=_append(["fx_rates"], {"currency": "EUR", "date": "2026-10-15", "rate": "1.3"})
            )
        )
    assert error.value.field == "fx_rates[3]"

    with pytest.raises(CatalogInUse):
        apply(book(change=_set(["fx_rates", 1, "rate"], "1.25")))  # an existing rate of 10-06

    # from the day after, both are fine
    later = {**back, "effective_from": "2026-11-01"}
    report = apply(
        book(
            add=_append(["price_book"], later),
            rate=_append(["fx_rates"], {"currency": "EUR", "date": "2026-11-01", "rate": "1.3"}),
        )
    )
    assert report.sections["price_book"]["created"] == ["2026-11-01"]
    assert report.sections["fx_rates"]["created"] == ["EUR@2026-11-01"]


def test_a_locked_version_is_a_409_over_the_api(api, make_key):
    admin = api(make_key(scopes=("admin", "read")))
    assert admin.post("/api/v1/catalog/apply", BOOK).status_code == 200
    lock(date(2026, 1, 1), through=date(2026, 10, 31))

    response = admin.post("/api/v1/catalog/apply", book(change=_set(["fx_rates", 0, "rate"], "2")))

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "catalog_in_use"
    assert response.json()["error"]["field"] == "fx_rates[0]"


def test_the_export_applies_back_unchanged():
    apply(BOOK)
    exported = catalog_export()

    assert exported["price_book"] == [
        {
            "effective_from": "2026-01-01",
            "note": "list prices",
            "llm": [
                {
                    "provider": "anthropic",
                    "model": "claude-y",
                    "input": "3",
                    "output": "15",
                    "cache_read": "0.3",
                    "cache_write": "3.75",
                },
                {"provider": "openai", "model": "gpt-x", "input": "2", "output": "8"},
                {
                    "provider": "openai",
                    "model": "o-think",
                    "input": "1.1",
                    "output": "4.4",
                    "reasoning": "5",
                },
            ],
            "apis": [
                {"provider": "searchco", "endpoint": "search", "per_call": "0.002"},
                {"provider": "transco", "endpoint": "translate", "per_credit": "0.000000000001"},
            ],
            "compute": [{"service": "gateway", "per_request": "0.0001", "per_ms": "0.000002"}],
        }
    ]
    assert exported["fx_rates"] == [
        {"currency": "EUR", "date": "2026-09-01", "rate": "1.1"},
        {"currency": "EUR", "date": "2026-10-06", "rate": "1.2"},
        {"currency": "JPY", "date": "2026-09-01", "rate": "0.0067"},
    ]

    report = apply(exported)

    assert not report.changed
    assert report.sections["price_book"]["unchanged"] == ["2026-01-01"]


def test_the_export_of_the_starter_file_applies_back_unchanged():
    apply(STARTER.read_text())
    lock(date(2026, 1, 1), through=date(2026, 10, 31))

    report = apply(catalog_export())

    assert not report.changed
