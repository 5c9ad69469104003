"""catalog_apply: a declarative file applied whole or not at all, idempotent, versioned, with
errors that name the path in the file."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.catalog.errors import CatalogInUse, CatalogInvalid
from apps.catalog.models import Charge, CreditPack, Plan, RateCard, RateCardVersion
from apps.catalog.selectors import catalog_export
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.catalog.services.locks import rate_card_versions_lock
from apps.metering.models import Meter

EXAMPLE = Path(__file__).with_name("example_catalog.yaml")
pytestmark = pytest.mark.django_db


def apply(content: str | dict):
    text = json.dumps(content) if isinstance(content, dict) else content
    return catalog_apply(doc=catalog_parse(content=text))


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def test_the_example_applies_and_prices_stay_exact():
    report = apply(EXAMPLE.read_text())

    assert report.sections["meters"]["created"] == ["api_calls", "input_tokens", "active_users"]
    assert report.sections["rate_cards"]["created"] == ["standard@2026-01-01T00:00:00+00:00"]
    assert report.sections["plans"]["created"] == ["growth"]
    assert report.sections["credit_packs"]["created"] == ["pack-500"]
    version = RateCardVersion.objects.get()
    charges = list(Charge.objects.filter(version=version).order_by("position"))
    assert [c.model for c in charges] == ["graduated", "per_unit", "volume", "package"]
    assert charges[0].tiers == [
        {"up_to": "100000", "unit_price": "0", "flat_fee": "0"},
        {"up_to": "1000000", "unit_price": "0.0002", "flat_fee": "0"},
        {"up_to": None, "unit_price": "0.0001", "flat_fee": "0"},
    ]
    assert (charges[1].unit_price, charges[1].package_size) == (Decimal("2.5"), Decimal(1000000))
    assert charges[1].filters == {"model": "gpt-4o"}
    assert (charges[3].free_units, charges[3].package_price) == (Decimal(5000), Decimal("0.5"))
    plan = Plan.objects.get()
    assert (plan.base_fee_amount, plan.minimum_commitment_amount, plan.currency) == (
        Decimal("99.00"),
        Decimal("500.00"),
        "USD",
    )
    pack = CreditPack.objects.get()
    assert (pack.price_amount, pack.credits_amount, pack.expires_after_days) == (
        Decimal("450"),
        Decimal("500"),
        365,
    )


def test_applying_the_same_file_twice_changes_nothing():
    apply(EXAMPLE.read_text())
    before = (
        RateCardVersion.objects.get().updated_at,
        Meter.objects.get(code="api_calls").updated_at,
    )

    report = apply(EXAMPLE.read_text())

    assert not report.changed
    assert report.sections["rate_cards"]["unchanged"] == ["standard@2026-01-01T00:00:00+00:00"]
    assert sorted(report.sections["meters"]["unchanged"]) == [
        "active_users",
        "api_calls",
        "input_tokens",
    ]
    after = (
        RateCardVersion.objects.get().updated_at,
        Meter.objects.get(code="api_calls").updated_at,
    )
    assert after == before


def test_unquoted_yaml_decimals_are_read_exactly():
    doc = example()
    text = EXAMPLE.read_text().replace('unit_price: "0.0002"', "unit_price: 0.0002")
    assert text != EXAMPLE.read_text()
    del doc

    apply(text)

    tiers = Charge.objects.get(position=0).tiers
    assert tiers[1]["unit_price"] == "0.0002"


def test_a_changed_price_updates_an_unused_version_in_place():
    apply(EXAMPLE.read_text())
    doc = example()
    doc["rate_cards"][0]["charges"][1]["unit_price"] = "3.00"

    report = apply(doc)

    assert report.sections["rate_cards"]["updated"] == ["standard@2026-01-01T00:00:00+00:00"]
    assert RateCardVersion.objects.count() == 1
    assert Charge.objects.get(position=1).unit_price == Decimal(3)


def test_a_version_that_priced_finalized_invoices_never_changes():
    apply(EXAMPLE.read_text())
    version = RateCardVersion.objects.get()
    rate_card_versions_lock(version_period_starts={version.id: datetime(2026, 10, 1, tzinfo=UTC)})
    doc = example()
    doc["rate_cards"][0]["charges"][1]["unit_price"] = "3.00"

    with pytest.raises(CatalogInUse) as caught:
        apply(doc)

    assert caught.value.field == "rate_cards[0].effective_from"
    assert Charge.objects.get(position=1).unit_price == Decimal("2.5")


def test_a_new_price_from_a_later_date_is_a_new_version_and_the_old_one_stays():
    apply(EXAMPLE.read_text())
    version = RateCardVersion.objects.get()
    rate_card_versions_lock(version_period_starts={version.id: datetime(2026, 10, 1, tzinfo=UTC)})
    doc = example()
    later = dict(doc["rate_cards"][0], effective_from="2026-12-01T00:00:00Z")
    later["charges"] = [dict(c) for c in later["charges"]]
    later["charges"][1]["unit_price"] = "3.00"
    doc["rate_cards"].append(later)

    report = apply(doc)

    assert report.sections["rate_cards"]["created"] == ["standard@2026-12-01T00:00:00+00:00"]
    assert report.sections["rate_cards"]["unchanged"] == ["standard@2026-01-01T00:00:00+00:00"]
    prices = {
        v.number: v.charges.get(position=1).unit_price
        for v in RateCardVersion.objects.order_by("number")
    }
    assert prices == {1: Decimal("2.5"), 2: Decimal(3)}


def test_a_new_version_cannot_reach_back_into_a_finalized_period():
    apply(EXAMPLE.read_text())
    version = RateCardVersion.objects.get()
    rate_card_versions_lock(version_period_starts={version.id: datetime(2026, 10, 1, tzinfo=UTC)})
    doc = example()
    doc["rate_cards"].append(dict(doc["rate_cards"][0], effective_from="2026-09-15T00:00:00Z"))

    with pytest.raises(CatalogInvalid) as caught:
        apply(doc)

    assert caught.value.field == "rate_cards[1].effective_from"
    assert RateCardVersion.objects.count() == 1


def _broken(change) -> dict:
    doc = example()
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("change", "path"),
    [
        pytest.param(
            lambda d: d["rate_cards"][0]["charges"][0]["tiers"][1].update(up_to=50000),
            "rate_cards[0].charges[0].tiers[1].up_to",
            id="tier-bound-not-increasing",
        ),
        pytest.param(
            lambda d: d["rate_cards"][0]["charges"][0]["tiers"][2].update(up_to=2000000),
            "rate_cards[0].charges[0].tiers[2].up_to",
            id="last-tier-bounded",
        ),
        pytest.param(
            lambda d: d["rate_cards"][0]["charges"][2].update(meter="nope"),
            "rate_cards[0].charges[2].meter",
            id="unknown-meter",
        ),
        pytest.param(
            lambda d: d["rate_cards"][0]["charges"][1].update(unit_price="-1"),
            "rate_cards[0].charges[1].unit_price",
            id="negative-price",
        ),
        pytest.param(
            lambda d: d["rate_cards"][0]["charges"][1].update(unit_price="0.0000000000001"),
            "rate_cards[0].charges[1].unit_price",
            id="13-decimal-places",
        ),
        pytest.param(
            lambda d: d["rate_cards"][0]["charges"][1].pop("unit_price"),
            "rate_cards[0].charges[1].unit_price",
            id="per-unit-without-price",
        ),
        pytest.param(
            lambda d: d["rate_cards"][0]["charges"][3].update(package_size="0"),
            "rate_cards[0].charges[3].package_size",
            id="package-of-zero",
        ),
        pytest.param(
            lambda d: d["rate_cards"][0]["charges"][0].update(filter={"model": "gpt-4o"}),
            "rate_cards[0].charges[0].filter.model",
            id="filter-on-a-dimension-the-meter-does-not-group",
        ),
        pytest.param(
            lambda d: d["rate_cards"][0]["charges"][1].update(colour="red"),
            "rate_cards[0].charges[1]",
            id="unknown-field",
        ),
        pytest.param(
            lambda d: d["rate_cards"][0].update(currency="usd"),
            "rate_cards[0].currency",
            id="bad-currency",
        ),
        pytest.param(
            lambda d: d["meters"][0].update(field="input_tokens"),
            "meters[0].field",
            id="count-with-a-field",
        ),
        pytest.param(
            lambda d: d["meters"][1].update(field="colour"),
            "meters[1].field",
            id="sum-of-an-unknown-field",
        ),
        pytest.param(
            lambda d: d["meters"][1].update(group_by=["properties.a b"]),
            "meters[1].group_by[0]",
            id="property-key-with-a-space",
        ),
        pytest.param(
            lambda d: d["plans"][0].update(rate_card="premium"),
            "plans[0].rate_card",
            id="plan-of-an-unknown-rate-card",
        ),
        pytest.param(
            lambda d: d["plans"][0].update(base_fee="99.001"),
            "plans[0].base_fee",
            id="fee-finer-than-cents",
        ),
        pytest.param(
            lambda d: d["plans"][0].update(interval="week"),
            "plans[0].interval",
            id="unknown-interval",
        ),
        pytest.param(
            lambda d: d["credit_packs"][0].update(credits="0"),
            "credit_packs[0].credits",
            id="pack-of-no-credits",
        ),
        pytest.param(
            lambda d: d["meters"].append(dict(d["meters"][0])),
            "meters[3].code",
            id="meter-twice",
        ),
    ],
)
def test_an_invalid_file_is_refused_whole_naming_the_path(change, path):
    with pytest.raises(CatalogInvalid) as caught:
        apply(_broken(change))

    assert caught.value.field == path or caught.value.message.startswith(path), caught.value
    assert caught.value.message.startswith(path)
    assert not Meter.objects.exists() and not RateCard.objects.exists()
    assert not Plan.objects.exists() and not CreditPack.objects.exists()


def test_the_export_applies_back_unchanged():
    apply(EXAMPLE.read_text())

    report = apply(catalog_export())

    assert not report.changed


def test_catalog_apply_over_the_api_and_export(make_key, api, make_tenant):
    admin = api(make_key(scopes=("admin", "read")))
    response = admin.post(
        "/api/v1/catalog/apply", EXAMPLE.read_text(), content_type="application/yaml"
    )
    assert response.status_code == 200, response.content
    assert response.json()["changed"] is True
    exported = admin.get("/api/v1/catalog").json()
    assert [m["code"] for m in exported["meters"]] == ["active_users", "api_calls", "input_tokens"]
    assert exported["rate_cards"][0]["charges"][1] == {
        "meter": "input_tokens",
        "model": "per_unit",
        "unit_price": "2.5",
        "package_size": "1000000",
        "filter": {"model": "gpt-4o"},
    }
    bad = admin.post(
        "/api/v1/catalog/apply",
        EXAMPLE.read_text().replace("up_to: 1000000", "up_to: 10"),
        content_type="application/yaml",
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "rate_cards[0].charges[0].tiers[1].up_to"


def test_a_tenant_bound_key_cannot_apply_a_catalog(make_key, api, make_tenant):
    acme = make_tenant("acme")
    response = api(make_key(scopes=("admin",), tenant=acme)).post(
        "/api/v1/catalog/apply", EXAMPLE.read_text(), content_type="application/yaml"
    )

    assert response.status_code == 403
    assert not Meter.objects.exists()


def test_the_command_applies_a_file_and_names_the_path_of_a_problem(tmp_path, capsys):
    call_command("catalog_apply", str(EXAMPLE))
    assert json.loads(capsys.readouterr().out)["changed"] is True
    broken = tmp_path / "broken.yaml"
    broken.write_text(EXAMPLE.read_text().replace('base_fee: "99.00"', 'base_fee: "x"'))

    with pytest.raises(CommandError) as caught:
        call_command("catalog_apply", str(broken))

    assert "plans[0].base_fee" in str(caught.value)


def test_an_effective_from_past_year_9999_in_utc_names_the_field():
    doc = example()
    doc["rate_cards"][0]["effective_from"] = "9999-12-31T23:00:00-05:00"

    with pytest.raises(CatalogInvalid) as raised:
        apply(doc)

    assert raised.value.field == "rate_cards[0].effective_from"
    assert "out of range in UTC" in raised.value.message


def test_a_file_that_is_not_utf8_is_refused_as_invalid(make_key, api):
    """Bytes that are no UTF-8 text were a decoding error, hence a server error."""
    response = api(make_key()).post("/api/v1/catalog/apply", b"o\x9f!\xff")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == CatalogInvalid.code
    assert "not UTF-8 text" in response.json()["error"]["message"]
