"""``catalog_apply``: make the catalog what a file says, in one transaction, or change nothing.

Objects are matched by code (rate-card versions by code and ``effective_from``); each is
created, updated or left unchanged, so applying a file twice changes nothing the second time.
Objects the file does not mention are left as they are. A rate-card version a finalized invoice
was priced with is history: it cannot change, and a new version may not take effect at or
before the last period it priced. Meters those versions price cannot change either.
"""

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from django.conf import settings
from django.db import transaction

from apps.catalog.errors import CatalogInUse, CatalogInvalid
from apps.catalog.models import Charge, CreditPack, Plan, RateCard, RateCardVersion
from apps.catalog.selectors import _charge_export
from apps.catalog.services.document import (
    CatalogDoc,
    ChargeDoc,
    CreditPackDoc,
    MeterDoc,
    PlanDoc,
    RateCardDoc,
    as_json,
    decimal_check,
    decimal_text,
    invalid,
)
from apps.catalog.services.price_book import price_book_apply, price_book_check
from apps.core.audit import audit_record
from apps.core.money import currency_is_known, minor_units
from apps.metering.models import Meter
from apps.metering.services.meters import (
    MeterFieldInvalid,
    MeterSpec,
    dimension_check,
    meter_matches,
    meter_upsert,
    value_field_check,
)
from apps.rating.charges import (
    ChargeSpec,
    ChargeSpecInvalid,
    PricingModel,
    Tier,
    charge_spec_check,
)


@dataclass
class ApplyReport:
    """What applying a file did, by section: the codes created, updated and unchanged."""

    sections: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def add(self, section: str, outcome: str, code: str) -> None:
        groups = self.sections.setdefault(section, {"created": [], "updated": [], "unchanged": []})
        groups[outcome].append(code)

    @property
    def changed(self) -> bool:
        return any(g["created"] or g["updated"] for g in self.sections.values())


@transaction.atomic(durable=True)
def catalog_apply(*, doc: CatalogDoc) -> ApplyReport:
    """Apply a parsed catalog file (see ``document.catalog_parse``). Raises CatalogInvalid
    naming the path of the first problem, or CatalogInUse, and then applies nothing."""
    meters = _meters_resolve(doc)
    _rate_cards_check(doc, meters)
    _plans_check(doc)
    _credit_packs_check(doc)
    price_book_check(doc=doc)
    report = ApplyReport()
    for index, meter_doc in enumerate(doc.meters):
        _meter_apply(index, meter_doc, report)
    for index, card in enumerate(doc.rate_cards):
        _version_apply(index, card, report)
    for index, plan in enumerate(doc.plans):
        _plan_apply(index, plan, report)
    for index, pack in enumerate(doc.credit_packs):
        _pack_apply(index, pack, report)
    report.sections.update(price_book_apply(doc=doc))
    return report


# --- checks -------------------------------------------------------------------------------


def _unique(items: list, key: str, section: str) -> None:
    seen: dict[object, int] = {}
    for index, item in enumerate(items):
        value = getattr(item, key)
        if value in seen:
            raise invalid(
                f"{section}[{index}].{key}", f"{value!r} appears twice (also at [{seen[value]}])"
            )
        seen[value] = index


def _meter_spec(doc: MeterDoc) -> MeterSpec:
    return MeterSpec(
        code=doc.code,
        event_type=doc.event_type,
        aggregation=doc.aggregation,
        field=doc.field,
        filters=tuple(sorted(doc.filter.items())),
        group_by=tuple(doc.group_by),
        name=doc.name,
    )


def _meters_resolve(doc: CatalogDoc) -> dict[str, MeterSpec]:
    """Every meter a charge may name: the file's, checked, over those already stored."""
    _unique(doc.meters, "code", "meters")
    known = {
        m.code: MeterSpec(
            code=m.code,
            event_type=m.event_type,
            aggregation=m.aggregation,
            field=m.field,
            filters=tuple(sorted((m.filters or {}).items())),
            group_by=tuple(m.group_by or []),
            name=m.name,
        )
        for m in Meter.objects.all()
    }
    for index, meter in enumerate(doc.meters):
        path = f"meters[{index}]"
        try:
            value_field_check(meter.aggregation, meter.field)
        except MeterFieldInvalid as exc:
            raise invalid(f"{path}.field", str(exc)) from exc
        for name in meter.filter:
            try:
                dimension_check(name)
            except MeterFieldInvalid as exc:
                raise invalid(f"{path}.filter.{name}", str(exc)) from exc
        for position, name in enumerate(meter.group_by):
            try:
                dimension_check(name)
            except MeterFieldInvalid as exc:
                raise invalid(f"{path}.group_by[{position}]", str(exc)) from exc
        known[meter.code] = _meter_spec(meter)
    return known


def charge_spec(doc: ChargeDoc) -> ChargeSpec:
    """The rating engine's view of a charge from the file (defaults filled in)."""
    return ChargeSpec(
        model=PricingModel(doc.model),
        unit_price=doc.unit_price if doc.unit_price is not None else Decimal(0),
        package_size=doc.package_size if doc.package_size is not None else Decimal(1),
        package_price=doc.package_price if doc.package_price is not None else Decimal(0),
        free_units=doc.free_units,
        tiers=tuple(Tier(t.up_to, t.unit_price, t.flat_fee) for t in doc.tiers),
    )


_REQUIRED = {
    "per_unit": ("unit_price",),
    "package": ("package_size", "package_price"),
    "graduated": ("tiers",),
    "volume": ("tiers",),
}
_UNUSED = {
    "per_unit": ("package_price", "tiers"),
    "package": ("unit_price", "tiers"),
    "graduated": ("unit_price", "package_size", "package_price"),
    "volume": ("unit_price", "package_size", "package_price"),
}


def _charge_check(path: str, charge: ChargeDoc, meters: dict[str, MeterSpec]) -> None:
    meter = meters.get(charge.meter)
    if meter is None:
        raise invalid(f"{path}.meter", f"{charge.meter!r} is not a meter of this file or catalog")
    for name in _REQUIRED[charge.model]:
        value = getattr(charge, name)
        if value is None or value == []:
            raise invalid(f"{path}.{name}", f"required for a {charge.model} charge")
    for name in _UNUSED[charge.model]:
        value = getattr(charge, name)
        if value is not None and value != []:
            raise invalid(f"{path}.{name}", f"a {charge.model} charge has no {name}")
    for name in ("unit_price", "package_size", "package_price", "free_units"):
        decimal_check(f"{path}.{name}", getattr(charge, name))
    for index, tier in enumerate(charge.tiers):
        for name in ("up_to", "unit_price", "flat_fee"):
            decimal_check(f"{path}.tiers[{index}].{name}", getattr(tier, name))
    try:
        charge_spec_check(charge_spec(charge))
    except ChargeSpecInvalid as exc:
        raise invalid(f"{path}.{exc.path}", exc.message) from exc
    for name in charge.filter:
        if name not in meter.group_by:
            raise invalid(
                f"{path}.filter.{name}",
                f"meter {meter.code!r} is not grouped by {name!r}; add it to its group_by",
            )


def _rate_cards_check(doc: CatalogDoc, meters: dict[str, MeterSpec]) -> None:
    seen: dict[tuple[str, datetime], int] = {}
    currencies: dict[str, str] = dict(RateCard.objects.values_list("code", "currency"))
    for index, card in enumerate(doc.rate_cards):
        path = f"rate_cards[{index}]"
        try:
            card.effective_from.astimezone(UTC)
        except OverflowError as exc:  # 9999-12-31T23:00:00-05:00 is past year 9999 in UTC
            raise invalid(
                f"{path}.effective_from",
                f"{card.effective_from.isoformat()} is out of range in UTC",
            ) from exc
        key = (card.code, card.effective_from)
        if key in seen:
            raise invalid(
                f"{path}.effective_from",
                f"{card.code!r} has two versions from {card.effective_from.isoformat()}",
            )
        seen[key] = index
        if not currency_is_known(card.currency):
            raise invalid(f"{path}.currency", f"{card.currency!r} is not an ISO 4217 code")
        if currencies.setdefault(card.code, card.currency) != card.currency:
            raise invalid(
                f"{path}.currency",
                f"rate card {card.code!r} is in {currencies[card.code]}; a rate card keeps "
                "one currency",
            )
        if not card.charges:
            raise invalid(f"{path}.charges", "a rate card version needs at least one charge")
        for position, charge in enumerate(card.charges):
            _charge_check(f"{path}.charges[{position}]", charge, meters)


def _money_check(path: str, value: Decimal, currency: str) -> None:
    decimal_check(path, value, places=minor_units(currency))


def _plans_check(doc: CatalogDoc) -> None:
    _unique(doc.plans, "code", "plans")
    currencies = dict(RateCard.objects.values_list("code", "currency"))
    currencies.update({card.code: card.currency for card in doc.rate_cards})
    for index, plan in enumerate(doc.plans):
        path = f"plans[{index}]"
        currency = currencies.get(plan.rate_card)
        if currency is None:
            raise invalid(f"{path}.rate_card", f"{plan.rate_card!r} is not a rate card")
        _money_check(f"{path}.base_fee", plan.base_fee, currency)
        _money_check(f"{path}.minimum_commitment", plan.minimum_commitment, currency)
        stored = Plan.objects.filter(code=plan.code).first()
        if stored is not None and stored.currency != currency:
            raise invalid(
                f"{path}.rate_card",
                f"plan {plan.code!r} bills in {stored.currency}; {plan.rate_card!r} is in "
                f"{currency}",
            )


def _credit_packs_check(doc: CatalogDoc) -> None:
    _unique(doc.credit_packs, "code", "credit_packs")
    for index, pack in enumerate(doc.credit_packs):
        path = f"credit_packs[{index}]"
        currency = pack.currency or settings.PERCALL_OPERATOR_CURRENCY
        if not currency_is_known(currency):
            raise invalid(f"{path}.currency", f"{currency!r} is not an ISO 4217 code")
        _money_check(f"{path}.price", pack.price, currency)
        _money_check(f"{path}.credits", pack.credits, currency)
        if pack.credits <= 0:
            raise invalid(f"{path}.credits", f"{pack.credits} must be more than 0")


# --- apply --------------------------------------------------------------------------------


def _meter_apply(index: int, doc: MeterDoc, report: ApplyReport) -> None:
    spec = _meter_spec(doc)
    stored = Meter.objects.filter(code=doc.code).first()
    if stored is not None and not meter_matches(stored, spec) and _meter_locked(stored):
        raise CatalogInUse(
            f"meters[{index}]: meter {doc.code!r} prices finalized invoices and cannot change; "
            "define a new meter and a new rate-card version that uses it",
            field=f"meters[{index}]",
        )
    _, outcome = meter_upsert(spec=spec)
    report.add("meters", outcome, doc.code)


def _meter_locked(meter: Meter) -> bool:
    return Charge.objects.filter(meter=meter, version__locked_at__isnull=False).exists()


def _charges_content(card: RateCardDoc) -> list[dict]:
    return [
        as_json(
            {
                "meter": c.meter,
                "model": c.model,
                "unit_price": c.unit_price,
                "package_size": c.package_size,
                "package_price": c.package_price,
                "free_units": c.free_units,
                "filter": dict(sorted(c.filter.items())),
                "tiers": [
                    {"up_to": t.up_to, "unit_price": t.unit_price, "flat_fee": t.flat_fee}
                    for t in c.tiers
                ],
                "description": c.description,
            }
        )
        for c in card.charges
    ]


def _content_hash(content: list[dict], name: str) -> str:
    canonical = json.dumps({"name": name, "charges": content}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _version_apply(index: int, doc: RateCardDoc, report: ApplyReport) -> None:
    path = f"rate_cards[{index}]"
    label = f"{doc.code}@{doc.effective_from.isoformat()}"
    card, created = RateCard.objects.select_for_update().get_or_create(
        code=doc.code, defaults={"currency": doc.currency, "name": doc.name}
    )
    if not created and card.name != doc.name:
        card.name = doc.name
        card.save(update_fields=["name", "updated_at"])
    content = _charges_content(doc)
    digest = _content_hash(content, doc.name)
    # Locked before it is read: a billing run holds versions it prices FOR SHARE, so this waits
    # for it, then sees whether that run locked the version into history.
    version = card.versions.select_for_update().filter(effective_from=doc.effective_from).first()
    if version is not None and version.content_hash == digest:
        report.add("rate_cards", "unchanged", label)
        return
    if version is not None and version.locked_at is not None:
        raise CatalogInUse(
            f"{path}: version {version.number} of {doc.code!r} priced finalized invoices and "
            "cannot change; give the new prices a later effective_from",
            field=f"{path}.effective_from",
        )
    locked_through = (
        card.versions.filter(locked_through__isnull=False)
        .order_by("-locked_through")
        .values_list("locked_through", flat=True)
        .first()
    )
    if locked_through is not None and doc.effective_from <= locked_through:
        raise CatalogInvalid(
            f"{path}.effective_from: {doc.effective_from.isoformat()} is not after "
            f"{locked_through.isoformat()}, the start of the last finalized period "
            f"{doc.code!r} priced",
            field=f"{path}.effective_from",
        )
    before = None if version is None else {"number": version.number,
                                            "content_hash": version.content_hash,
                                            "charges": _stored_charges(version)}  # fmt: skip
    if version is None:
        number = card.versions.order_by("-number").values_list("number", flat=True).first() or 0
        version = RateCardVersion(
            rate_card=card, number=number + 1, effective_from=doc.effective_from
        )
        outcome = "created"
    else:
        version.charges.all().delete()
        outcome = "updated"
    version.content_hash = digest
    version.full_clean()
    version.save()
    meters = {m.code: m for m in Meter.objects.filter(code__in={c.meter for c in doc.charges})}
    for position, (charge, stored) in enumerate(zip(doc.charges, content, strict=True)):
        spec = charge_spec(charge)
        row = Charge(
            version=version,
            position=position,
            meter=meters[charge.meter],
            model=charge.model,
            description=charge.description,
            unit_price=spec.unit_price,
            package_size=spec.package_size,
            package_price=spec.package_price,
            free_units=spec.free_units,
            filters=stored["filter"],
            tiers=stored["tiers"],
        )
        row.full_clean(exclude=["version", "meter"])
        row.save()
    audit_record(
        action=f"rate_card_version.{'create' if outcome == 'created' else 'update'}",
        target_type="rate_card_version",
        target_id=version.id,
        before=before,
        after={"rate_card": doc.code, "number": version.number,
               "effective_from": doc.effective_from, "content_hash": digest,
               "charges": content},
    )  # fmt: skip
    report.add("rate_cards", outcome, label)


def _stored_charges(version: RateCardVersion) -> list[dict[str, Any]]:
    """A version's charges as the audit log shows them: meter and prices."""
    return [
        dict(row)
        for row in version.charges.order_by("position").values(
            "meter__code", "model", "unit_price", "package_size", "package_price",
            "free_units", "filters", "tiers",
        )
    ]  # fmt: skip


def _plan_apply(index: int, doc: PlanDoc, report: ApplyReport) -> None:
    card = RateCard.objects.get(code=doc.rate_card)
    values = {
        "name": doc.name,
        "interval": doc.interval,
        "currency": card.currency,
        "rate_card": card,
        "base_fee_amount": doc.base_fee,
        "minimum_commitment_amount": doc.minimum_commitment,
        "trial_days": doc.trial_days,
        "active": doc.active,
    }
    report.add("plans", _upsert(Plan, doc.code, values), doc.code)


def _pack_apply(index: int, doc: CreditPackDoc, report: ApplyReport) -> None:
    values = {
        "name": doc.name,
        "currency": doc.currency or settings.PERCALL_OPERATOR_CURRENCY,
        "price_amount": doc.price,
        "credits_amount": doc.credits,
        "expires_after_days": doc.expires_after_days,
        "active": doc.active,
    }
    report.add("credit_packs", _upsert(CreditPack, doc.code, values), doc.code)


def _upsert(model: type[Plan] | type[CreditPack], code: str, values: dict) -> str:
    stored = model.objects.select_for_update().filter(code=code).first()
    if stored is not None and all(getattr(stored, name) == value for name, value in values.items()):
        return "unchanged"
    before = None if stored is None else {name: getattr(stored, name) for name in values}
    row = stored or model(code=code)
    for name, value in values.items():
        setattr(row, name, value)
    row.full_clean()
    row.save()
    audit_record(
        action=f"{model._meta.model_name}.{'update' if stored is not None else 'create'}",
        target_type=model._meta.model_name or "",
        target_id=row.pk,
        before=before,
        after={"code": code, **values},
    )
    return "updated" if stored is not None else "created"


# --- charges edited in place (the admin) ----------------------------------------------------


def _charge_doc(charge: Charge) -> ChargeDoc:
    """A stored charge as a file states it: the form ``catalog_export`` writes (a field at its
    default left out), so a version hashes as the file that exports it."""
    try:
        return msgspec.convert(_charge_export(charge), ChargeDoc)
    except msgspec.ValidationError as exc:
        raise CatalogInvalid(f"charge: {exc}", field="tiers") from exc


def charge_row_check(*, charge: Charge) -> None:
    """Check a charge edited in place (the admin) as ``catalog_apply`` checks one in a file.
    Raises CatalogInvalid whose ``field`` is the model field at fault (``unit_price``,
    ``tiers``, ``filters``, ``meter``...)."""
    doc = _charge_doc(charge)
    spec = charge_spec(doc)
    for name in ("unit_price", "package_size", "package_price"):
        # A value the file could not state: the model does not use the field.
        if getattr(spec, name) != getattr(charge, name):
            raise CatalogInvalid(
                f"{name}: a {charge.model} charge has no {name}; leave it at "
                f"{decimal_text(getattr(spec, name))}",
                field=name,
            )
    try:
        _charge_check("charge", doc, _meters_resolve(CatalogDoc()))
    except CatalogInvalid as exc:
        name = re.split(r"[.\[]", (exc.field or "").removeprefix("charge."))[0]
        raise CatalogInvalid(
            exc.message.removeprefix("charge."), field={"filter": "filters"}.get(name, name)
        ) from exc


@transaction.atomic
def version_hash_refresh(*, version_id: UUID) -> RateCardVersion:
    """Recompute a version's ``content_hash`` from its stored charges after they were edited
    in place (the admin), the way ``catalog_apply`` hashes a file: applying a file that
    states these charges then reports the version unchanged, one that states others updates
    it. A locked version is history: raises CatalogInUse."""
    version = RateCardVersion.objects.select_for_update().get(id=version_id)
    if version.locked_at is not None:
        raise CatalogInUse(
            f"version {version.number} of {version.rate_card.code!r} priced finalized "
            "invoices and cannot change",
            field="charges",
        )
    card = version.rate_card
    charges = version.charges.select_related("meter").order_by("position")
    doc = RateCardDoc(
        code=card.code,
        currency=card.currency,
        effective_from=version.effective_from,
        charges=[_charge_doc(c) for c in charges],
        name=card.name,
    )
    version.content_hash = _content_hash(_charges_content(doc), card.name)
    version.full_clean()
    version.save(update_fields=["content_hash", "updated_at"])
    return version
