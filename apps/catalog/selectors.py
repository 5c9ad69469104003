"""Read path for the catalog: the export in the file's own shape, and what billing prices with.

The catalog is operator configuration, the same for every tenant: nothing here is scoped."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch, QuerySet

from apps.catalog.errors import CreditPackNotFound, PlanNotFound
from apps.catalog.models import (
    Charge,
    CreditPack,
    FxRate,
    Plan,
    PriceBookVersion,
    RateCardVersion,
)
from apps.catalog.services.document import decimal_text
from apps.catalog.services.price_book import price_book_export
from apps.metering.models import Meter
from apps.rating.charges import ChargeSpec, PricingModel, Tier


def _text(value: Decimal) -> str:
    return decimal_text(value)


def catalog_export(*, with_costs: bool = True) -> dict[str, Any]:
    """The whole catalog as a file ``catalog_apply`` takes back unchanged: every meter, every
    rate-card version (oldest first), plan and credit pack, and (``with_costs``) the price
    book and FX rates, which are the operator's own figures. Decimals are strings."""
    meters = [
        {
            "code": m.code,
            "event_type": m.event_type,
            "aggregation": m.aggregation,
            **({"field": m.field} if m.field else {}),
            **({"filter": dict(m.filters)} if m.filters else {}),
            **({"group_by": list(m.group_by)} if m.group_by else {}),
            **({"name": m.name} if m.name else {}),
        }
        for m in Meter.objects.order_by("code")
    ]
    versions = RateCardVersion.objects.select_related("rate_card").prefetch_related(
        Prefetch("charges", queryset=Charge.objects.select_related("meter").order_by("position"))
    )
    rate_cards = [
        {
            "code": v.rate_card.code,
            "currency": v.rate_card.currency,
            "effective_from": v.effective_from.isoformat(),
            **({"name": v.rate_card.name} if v.rate_card.name else {}),
            "charges": [_charge_export(c) for c in v.charges.all()],
        }
        for v in versions.order_by("rate_card__code", "effective_from")
    ]
    plans = [
        {
            "code": p.code,
            "name": p.name,
            "interval": p.interval,
            "rate_card": p.rate_card.code,
            "base_fee": _text(p.base_fee_amount),
            "minimum_commitment": _text(p.minimum_commitment_amount),
            "trial_days": p.trial_days,
            **({} if p.active else {"active": False}),
        }
        for p in Plan.objects.select_related("rate_card").order_by("code")
    ]
    packs = [
        {
            "code": p.code,
            "name": p.name,
            "currency": p.currency,
            "price": _text(p.price_amount),
            "credits": _text(p.credits_amount),
            **({"expires_after_days": p.expires_after_days} if p.expires_after_days else {}),
            **({} if p.active else {"active": False}),
        }
        for p in CreditPack.objects.order_by("code")
    ]
    return {
        "meters": meters,
        "rate_cards": rate_cards,
        "plans": plans,
        "credit_packs": packs,
        **(price_book_export() if with_costs else {}),
    }


def _charge_export(charge: Charge) -> dict[str, Any]:
    out: dict[str, Any] = {"meter": charge.meter.code, "model": charge.model}
    if charge.model == Charge.Model.PER_UNIT:
        out["unit_price"] = _text(charge.unit_price)
        if charge.package_size != 1:
            out["package_size"] = _text(charge.package_size)
    if charge.model == Charge.Model.PACKAGE:
        out["package_size"] = _text(charge.package_size)
        out["package_price"] = _text(charge.package_price)
    if charge.tiers:
        out["tiers"] = charge.tiers
    if charge.free_units:
        out["free_units"] = _text(charge.free_units)
    if charge.filters:
        out["filter"] = charge.filters
    if charge.description:
        out["description"] = charge.description
    return out


def charge_spec_of(charge: Charge) -> ChargeSpec:
    """A stored charge as the rating engine's input."""
    return ChargeSpec(
        model=PricingModel(charge.model),
        unit_price=charge.unit_price,
        package_size=charge.package_size,
        package_price=charge.package_price,
        free_units=charge.free_units,
        tiers=tuple(
            Tier(
                None if t["up_to"] is None else Decimal(t["up_to"]),
                Decimal(t["unit_price"]),
                Decimal(t.get("flat_fee", "0")),
            )
            for t in charge.tiers
        ),
    )


def plan_get(*, code: str) -> Plan:
    plan = Plan.objects.select_related("rate_card").filter(code=code).first()
    if plan is None:
        raise PlanNotFound(f"plan: {code!r} is not a plan", field="plan")
    return plan


def credit_pack_get(*, code: str) -> CreditPack:
    pack = CreditPack.objects.filter(code=code).first()
    if pack is None:
        raise CreditPackNotFound(f"pack: {code!r} is not a credit pack", field="pack")
    return pack


def rate_card_version_at(*, rate_card_id: Any, at: datetime) -> RateCardVersion | None:
    """The version of a rate card in effect at ``at`` (the latest from before it)."""
    return (
        RateCardVersion.objects.filter(rate_card_id=rate_card_id, effective_from__lte=at)
        .order_by("-effective_from")
        .first()
    )


def rate_card_versions(*, rate_card_ids: list[Any]) -> QuerySet[RateCardVersion]:
    """Every version of these rate cards with their charges and meters, for a billing run.
    Read without a lock: finalization checks the versions' content hashes still match
    (``rate_card_versions_lock``)."""
    return (
        RateCardVersion.objects.filter(rate_card_id__in=rate_card_ids)
        .select_related("rate_card")
        .prefetch_related(
            Prefetch(
                "charges", queryset=Charge.objects.select_related("meter").order_by("position")
            )
        )
        .order_by("rate_card_id", "effective_from")
    )


def plans_by_id(*, plan_ids: list[Any]) -> dict[Any, Plan]:
    return {p.id: p for p in Plan.objects.filter(id__in=plan_ids).select_related("rate_card")}


def price_book_versions() -> list[PriceBookVersion]:
    """Every price-book version, oldest first, with its prices."""
    return list(PriceBookVersion.objects.prefetch_related("prices").order_by("effective_from"))


def fx_rates_by_currency() -> dict[str, list[tuple[Any, Decimal]]]:
    """Every FX rate as (date, rate) pairs by currency, oldest first."""
    table: dict[str, list[tuple[Any, Decimal]]] = {}
    for rate in FxRate.objects.order_by("currency", "date"):
        table.setdefault(rate.currency, []).append((rate.date, rate.rate))
    return table
