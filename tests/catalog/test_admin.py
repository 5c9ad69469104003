"""The catalog admin: locked rate-card versions are history, unlocked ones keep their content
hash honest, plans keep their currency, and rows in use are not deleted."""

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.billing.services.purchases import credit_pack_purchase
from apps.catalog.models import Charge, CreditPack, Plan, RateCard, RateCardVersion
from apps.catalog.services.apply import catalog_apply, version_hash_refresh
from apps.catalog.services.document import catalog_parse
from apps.catalog.services.locks import rate_card_versions_lock
from apps.metering.models import Meter
from tests.billing.billing_setup import CATALOG, catalog_load, subscribe

OCT = datetime(2026, 10, 1, tzinfo=UTC)
PER_CALL = "per-call@2026-01-01T00:00:00+00:00"
USD_CARD = "usd-card@2026-01-01T00:00:00+00:00"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def catalog(db):
    catalog_load()


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@percall.test", "pw")
    client.force_login(user)
    return client


def apply(content: dict):
    return catalog_apply(doc=catalog_parse(content=json.dumps(content)))


def url(obj, view: str = "change") -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_{view}", args=[obj.pk])


def version(code: str) -> RateCardVersion:
    return RateCardVersion.objects.get(rate_card__code=code)


def lock(row: RateCardVersion) -> None:
    rate_card_versions_lock(version_period_starts={row.id: OCT})
    row.refresh_from_db()


def charges_form(row: RateCardVersion, changes: dict[int, dict[str, str]] | None = None) -> dict:
    """The version's change form as the admin posts it: every stored charge, with ``changes``
    by position."""
    charges = list(row.charges.order_by("position"))
    data = {
        "charges-TOTAL_FORMS": str(len(charges)),
        "charges-INITIAL_FORMS": str(len(charges)),
        "charges-MIN_NUM_FORMS": "0",
        "charges-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for index, charge in enumerate(charges):
        fields = {
            "id": str(charge.pk),
            "version": str(row.pk),
            "position": str(charge.position),
            "meter": str(charge.meter_id),
            "model": charge.model,
            "description": charge.description,
            "unit_price": str(charge.unit_price),
            "package_size": str(charge.package_size),
            "package_price": str(charge.package_price),
            "free_units": str(charge.free_units),
            "filters": json.dumps(charge.filters),
            "tiers": json.dumps(charge.tiers),
        }
        fields.update((changes or {}).get(charge.position, {}))
        data.update({f"charges-{index}-{name}": value for name, value in fields.items()})
    return data


def _errors(response) -> list[str]:
    """The page's messages: per field (lists) and the formsets' own (text)."""
    found = response.context["errors"]
    return [e for item in found for e in ([item] if isinstance(item, str) else item)]


def saved(response) -> None:
    """The admin redirects after a save; on a form error it shows the form again."""
    if response.status_code != 302:
        errors = _errors(response) if response.context else []
        pytest.fail(f"not saved ({response.status_code}): {errors}")


def refused(response) -> str:
    assert response.status_code == 200
    errors = _errors(response)
    assert errors
    return " ".join(errors)


def test_every_catalog_page_loads(staff):
    locked = version("per-call")
    lock(locked)
    rows = [
        RateCard.objects.get(code="usd-card"),
        version("usd-card"),
        locked,
        Plan.objects.get(code="growth"),
        CreditPack.objects.get(code="pack-100"),
    ]
    for row in rows:
        changelist = reverse(f"admin:catalog_{row._meta.model_name}_changelist")
        assert staff.get(changelist).status_code == 200
        assert staff.get(changelist, {"q": "usd"}).status_code == 200
        assert staff.get(url(row)).status_code == 200
    assert (
        staff.get(
            reverse("admin:catalog_ratecardversion_changelist"), {"locked": "yes"}
        ).status_code
        == 200
    )
    assert staff.get(reverse("admin:catalog_plan_add")).status_code == 200
    assert staff.get(reverse("admin:catalog_creditpack_add")).status_code == 200
    # rate cards and their versions come from the catalog file
    assert staff.get(reverse("admin:catalog_ratecard_add")).status_code == 403
    assert staff.get(reverse("admin:catalog_ratecardversion_add")).status_code == 403


def test_a_locked_version_shows_its_charges_read_only_and_refuses_changes(staff):
    # given per-call's only version, locked by a finalized invoice
    row = version("per-call")
    lock(row)
    charge = row.charges.get()

    # then its page shows the charge without an input for it
    page = staff.get(url(row)).content.decode()
    assert "1.000000000000" in page
    for name in ("unit_price", "package_size", "tiers", "filters", "meter", "DELETE"):
        assert f'name="charges-0-{name}"' not in page

    # and a post that changes its price, or deletes it, changes nothing
    response = staff.post(url(row), charges_form(row, {0: {"unit_price": "9"}}))
    assert response.status_code == 403
    response = staff.post(url(row), charges_form(row, {0: {"DELETE": "on"}}))
    assert response.status_code == 403
    charge.refresh_from_db()
    assert charge.unit_price == Decimal("1.00")
    assert RateCardVersion.objects.get(id=row.id).content_hash == row.content_hash

    # nor can the version be deleted, one by one or from the list
    assert staff.post(url(row, "delete"), {"post": "yes"}).status_code == 403
    staff.post(
        reverse("admin:catalog_ratecardversion_changelist"),
        {"action": "delete_selected", "_selected_action": [str(row.id)], "post": "yes"},
    )
    assert RateCardVersion.objects.filter(id=row.id).exists()
    assert Charge.objects.filter(id=charge.id).exists()


def test_an_unlocked_version_shows_editable_charges(staff):
    page = staff.get(url(version("per-call"))).content.decode()

    assert 'name="charges-0-unit_price"' in page
    assert 'name="charges-0-tiers"' in page


def test_an_edited_price_moves_the_hash_and_the_file_puts_it_back(staff):
    # given per-call's unlocked version at 1.00 a call
    row = version("per-call")
    before = row.content_hash

    # when its price is changed to 2.00 in the admin
    saved(staff.post(url(row), charges_form(row, {0: {"unit_price": "2.00"}})))

    # then the charge and the hash say so
    row.refresh_from_db()
    assert row.charges.get().unit_price == Decimal("2.00")
    assert row.content_hash != before

    # and applying the original file updates that version back to 1.00, and only that one
    report = apply(CATALOG)
    assert report.sections["rate_cards"]["updated"] == [PER_CALL]
    assert USD_CARD in report.sections["rate_cards"]["unchanged"]
    assert version("per-call").charges.get().unit_price == Decimal("1.00")
    assert version("per-call").content_hash == before

    # and applying it again changes nothing
    again = apply(CATALOG)
    assert not again.changed
    assert PER_CALL in again.sections["rate_cards"]["unchanged"]


def test_an_edit_that_matches_a_file_leaves_that_file_unchanged(staff):
    # given usd-card (every pricing model) with its seats charge raised to 13.00 in the admin
    row = version("usd-card")
    saved(staff.post(url(row), charges_form(row, {5: {"unit_price": "13.00"}})))

    # when a file that says the same is applied
    edited = copy.deepcopy(CATALOG)
    edited["rate_cards"][0]["charges"][5]["unit_price"] = "13.00"
    report = apply(edited)

    # then nothing changes
    assert not report.changed
    assert USD_CARD in report.sections["rate_cards"]["unchanged"]


def test_saving_without_changes_keeps_the_hash(staff):
    row = version("usd-card")

    saved(staff.post(url(row), charges_form(row)))

    assert RateCardVersion.objects.get(id=row.id).content_hash == row.content_hash
    assert not apply(CATALOG).changed


def test_the_hash_from_stored_charges_is_the_files_for_every_pricing_model():
    for row in RateCardVersion.objects.all():
        assert version_hash_refresh(version_id=row.id).content_hash == row.content_hash


def test_tiers_typed_as_numbers_are_stored_as_exact_text(staff):
    row = version("usd-card")
    tiers = '[{"up_to": 100000, "unit_price": 0}, {"up_to": 1000000, "unit_price": 0.00025},'
    tiers += ' {"up_to": null, "unit_price": 0.0001, "flat_fee": 5}]'

    saved(staff.post(url(row), charges_form(row, {0: {"tiers": tiers}})))

    assert row.charges.get(position=0).tiers == [
        {"up_to": "100000", "unit_price": "0", "flat_fee": "0"},
        {"up_to": "1000000", "unit_price": "0.00025", "flat_fee": "0"},
        {"up_to": None, "unit_price": "0.0001", "flat_fee": "5"},
    ]
    edited = copy.deepcopy(CATALOG)
    edited["rate_cards"][0]["charges"][0]["tiers"][1]["unit_price"] = "0.00025"
    assert not apply(edited).changed


@pytest.mark.parametrize(
    ("position", "changes", "message"),
    [
        (5, {"unit_price": "-1"}, "must be a number of at least 0"),
        (5, {"package_size": "0"}, "must be more than 0"),
        (5, {"package_price": "3"}, "a per_unit charge has no package_price"),
        (0, {"unit_price": "0.1"}, "a graduated charge has no unit_price"),
        (0, {"tiers": "[]"}, "required for a graduated charge"),
        (0, {"tiers": '[{"up_to": null}, {"up_to": "5"}]'}, "only allowed on the last tier"),
        (0, {"tiers": '[{"up_to": "x"}]'}, "Not a list of tiers"),
        (5, {"tiers": '[{"up_to": null, "unit_price": "1"}]'}, "a per_unit charge has no tiers"),
        (5, {"filters": '{"region": "eu"}'}, "is not grouped by 'region'"),
        (5, {"filters": '["region"]'}, "Give an object"),
    ],
)
def test_a_charge_the_file_could_not_state_is_refused(staff, position, changes, message):
    row = version("usd-card")
    before = {
        c.id: (c.unit_price, c.package_size, c.package_price, c.tiers) for c in Charge.objects.all()
    }

    errors = refused(staff.post(url(row), charges_form(row, {position: changes})))

    assert message in errors
    after = {
        c.id: (c.unit_price, c.package_size, c.package_price, c.tiers) for c in Charge.objects.all()
    }
    assert after == before
    assert RateCardVersion.objects.get(id=row.id).content_hash == row.content_hash


def test_the_last_charge_of_a_version_cannot_be_removed(staff):
    row = version("per-call")

    errors = refused(staff.post(url(row), charges_form(row, {0: {"DELETE": "on"}})))

    assert "at least one charge" in errors
    assert row.charges.count() == 1


def test_a_charge_can_be_added_and_removed_while_unlocked(staff):
    # given per-call with a second charge added in the admin
    row = version("per-call")
    data = charges_form(row)
    data["charges-TOTAL_FORMS"] = "2"
    seats = Meter.objects.get(code="seats")
    added = {"position": "1", "meter": str(seats.pk), "model": "per_unit", "unit_price": "12"}
    added |= {"package_size": "1", "package_price": "0", "free_units": "0", "version": str(row.pk)}
    data.update({f"charges-1-{name}": value for name, value in added.items()})
    saved(staff.post(url(row), data))
    assert row.charges.count() == 2

    # then the file with that charge is unchanged, and the file without it updates it back
    edited = copy.deepcopy(CATALOG)
    edited["rate_cards"][1]["charges"].append(
        {"meter": "seats", "model": "per_unit", "unit_price": "12"}
    )
    assert not apply(edited).changed
    assert apply(CATALOG).sections["rate_cards"]["updated"] == [PER_CALL]
    assert row.charges.count() == 1


def test_a_plan_keeps_its_currency_and_code(staff):
    plan = Plan.objects.get(code="growth")
    page = staff.get(url(plan)).content.decode()
    assert 'name="currency"' not in page
    assert 'name="code"' not in page

    def post(**changes: str):
        data = {
            "name": plan.name,
            "interval": plan.interval,
            "rate_card": str(plan.rate_card_id),
            "base_fee_amount": str(plan.base_fee_amount),
            "minimum_commitment_amount": str(plan.minimum_commitment_amount),
            "trial_days": str(plan.trial_days),
            "active": "on",
        }
        return staff.post(url(plan), data | changes)

    # a rate card in another currency is refused; amounts the currency cannot hold too
    jpy = RateCard.objects.get(code="jpy-card")
    assert "is in JPY" in refused(post(rate_card=str(jpy.pk)))
    assert "more decimals than USD" in refused(post(base_fee_amount="99.001"))
    assert "at least 0" in refused(post(minimum_commitment_amount="-1"))

    # the amounts are editable, the currency is not
    saved(post(base_fee_amount="89.00", currency="EUR", code="other"))
    plan.refresh_from_db()
    assert (plan.code, plan.base_fee_amount, plan.currency) == ("growth", Decimal("89.00"), "USD")


def test_a_plan_added_in_the_admin_takes_its_rate_cards_currency(staff):
    card = RateCard.objects.get(code="jpy-card")
    data = {"code": "yen-2", "name": "Yen 2", "interval": "month", "rate_card": str(card.pk)}
    data |= {"base_fee_amount": "500", "minimum_commitment_amount": "0", "trial_days": "0"}

    saved(staff.post(reverse("admin:catalog_plan_add"), data))

    assert Plan.objects.get(code="yen-2").currency == "JPY"


def test_a_credit_pack_is_editable_within_its_currency(staff):
    pack = CreditPack.objects.get(code="pack-100")
    data = {"name": pack.name, "currency": "USD", "price_amount": "80.00"}
    data |= {"credits_amount": "100.00", "expires_after_days": "60", "active": "on"}

    assert "not an ISO 4217 code" in refused(staff.post(url(pack), data | {"currency": "usd"}))
    assert "more than 0" in refused(staff.post(url(pack), data | {"credits_amount": "0"}))
    saved(staff.post(url(pack), data))

    pack.refresh_from_db()
    assert (pack.price_amount, pack.expires_after_days) == (Decimal("80.00"), 60)


def test_rows_in_use_are_not_deleted(staff, make_tenant):
    # given a plan with a subscription, its rate card, a meter its charges price, and a pack
    # a tenant bought
    subscribe(make_tenant("acme"), "growth", OCT)
    plan = Plan.objects.get(code="growth")
    card = RateCard.objects.get(code="usd-card")
    meter = Meter.objects.get(code="seats")
    pack = CreditPack.objects.get(code="pack-100")
    credit_pack_purchase(tenant=make_tenant("beta"), pack=pack)

    # then each delete page says it cannot be deleted, and a confirmed delete deletes nothing
    for row in (plan, card, meter, pack):
        page = staff.get(url(row, "delete"))
        assert page.status_code == 200
        assert b"Cannot delete" in page.content
        staff.post(url(row, "delete"), {"post": "yes"})
        assert type(row).objects.filter(pk=row.pk).exists()
