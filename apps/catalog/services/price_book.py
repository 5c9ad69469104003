"""The price book and FX table of the catalog file: checks, apply and export.

A price-book version is matched by ``effective_from`` and replaced as a whole when its content
changes; a version an issued chargeback statement used is locked and cannot change (409
``catalog_in_use``), and a new version may not take effect on or before the last day it
priced. FX rates are matched by (currency, date); a rate an issued statement used is locked
the same way, through the lock of the price-book version of that day.
"""

import hashlib
import json
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.catalog.errors import CatalogInUse
from apps.catalog.models import FxRate, PriceBookVersion, UpstreamPrice
from apps.catalog.services.document import (
    CatalogDoc,
    PriceBookVersionDoc,
    as_json,
    decimal_check,
    decimal_text,
    invalid,
)
from apps.core.audit import audit_record
from apps.core.money import currency_is_known

_LLM_FIELDS = {
    "input": "input_per_mtok",
    "output": "output_per_mtok",
    "cache_read": "cache_read_per_mtok",
    "cache_write": "cache_write_per_mtok",
    "reasoning": "reasoning_per_mtok",
}
_API_FIELDS = {"per_call": "per_call", "per_credit": "per_credit"}
_COMPUTE_FIELDS = {"per_request": "per_request", "per_ms": "per_ms"}
_FIELDS = {
    UpstreamPrice.Kind.LLM: _LLM_FIELDS,
    UpstreamPrice.Kind.API: _API_FIELDS,
    UpstreamPrice.Kind.COMPUTE: _COMPUTE_FIELDS,
}
_KEYS = {
    UpstreamPrice.Kind.LLM: ("provider", "model"),
    UpstreamPrice.Kind.API: ("provider", "endpoint"),
    UpstreamPrice.Kind.COMPUTE: ("service",),
}
_IDENTITY = ("provider", "model", "endpoint", "service")
_ALL_PRICES = tuple(c for fields in _FIELDS.values() for c in fields.values())


def _rows(doc: PriceBookVersionDoc, path: str) -> list[dict[str, Any]]:
    """The version's prices as UpstreamPrice field values, checked; duplicates refused."""
    rows: list[dict[str, Any]] = []
    seen: dict[tuple, str] = {}
    sections: list[tuple[str, str, list, dict[str, str], tuple[str, ...]]] = [
        ("llm", UpstreamPrice.Kind.LLM, doc.llm, _LLM_FIELDS, ("provider", "model")),
        ("apis", UpstreamPrice.Kind.API, doc.apis, _API_FIELDS, ("provider", "endpoint")),
        ("compute", UpstreamPrice.Kind.COMPUTE, doc.compute, _COMPUTE_FIELDS, ("service",)),
    ]
    for section, kind, items, fields, keys in sections:
        for index, item in enumerate(items):
            item_path = f"{path}.{section}[{index}]"
            key = (kind, *(getattr(item, k) for k in keys))
            if key in seen:
                raise invalid(item_path, f"{'/'.join(key[1:])} appears twice (also {seen[key]})")
            seen[key] = item_path
            prices = {column: getattr(item, name) for name, column in fields.items()}
            for name, column in fields.items():
                decimal_check(f"{item_path}.{name}", prices[column])
            if all(v is None for v in prices.values()):
                raise invalid(item_path, f"needs a price: one of {', '.join(fields)}")
            rows.append({"kind": kind, **{k: getattr(item, k) for k in keys}, **prices})
    return rows


def _hash_of(note: str, rows: list[dict[str, Any]]) -> str:
    """The digest of a version's content: its note and its prices in one order whatever the
    file's (the export lists them sorted), decimals as canonical text (2.50 is 2.5)."""
    ordered = sorted(
        rows,
        key=lambda r: tuple(str(r.get(k, "")) for k in ("kind", *_IDENTITY)),
    )
    canonical = json.dumps({"note": note, "prices": as_json(ordered)}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _hash(doc: PriceBookVersionDoc, rows: list[dict[str, Any]]) -> str:
    return _hash_of(doc.note, rows)


def price_book_check(*, doc: CatalogDoc) -> None:
    """The file's price book and FX rates, checked before anything is applied."""
    seen: dict[object, int] = {}
    for index, version in enumerate(doc.price_book):
        if version.effective_from in seen:
            first = seen[version.effective_from]
            raise invalid(
                f"price_book[{index}].effective_from",
                f"{version.effective_from} appears twice (also at [{first}])",
            )
        seen[version.effective_from] = index
        _rows(version, f"price_book[{index}]")
    operator = settings.PERCALL_OPERATOR_CURRENCY
    rates: dict[object, int] = {}
    for index, rate in enumerate(doc.fx_rates):
        path = f"fx_rates[{index}]"
        if not currency_is_known(rate.currency):
            raise invalid(f"{path}.currency", f"{rate.currency!r} is not an ISO 4217 code")
        if rate.currency == operator:
            raise invalid(f"{path}.currency", f"{rate.currency} is the operator currency")
        decimal_check(f"{path}.rate", rate.rate)
        if rate.rate == 0:
            raise invalid(f"{path}.rate", "must be more than 0")
        if (rate.currency, rate.date) in rates:
            raise invalid(path, f"{rate.currency} on {rate.date} appears twice")
        rates[(rate.currency, rate.date)] = index


def price_book_apply(*, doc: CatalogDoc) -> dict[str, dict[str, list[str]]]:
    """Apply the checked price book and FX rates; returns the report's sections."""
    versions: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": []}
    for index, version_doc in enumerate(doc.price_book):
        outcome = _version_apply(index, version_doc)
        versions[outcome].append(version_doc.effective_from.isoformat())
    rates: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": []}
    for index, rate_doc in enumerate(doc.fx_rates):
        label = f"{rate_doc.currency}@{rate_doc.date.isoformat()}"
        current = FxRate.objects.filter(currency=rate_doc.currency, date=rate_doc.date).first()
        if current is not None and current.rate == rate_doc.rate:
            rates["unchanged"].append(label)
            continue
        price_book_day_unlocked_check(path=f"fx_rates[{index}]", day=rate_doc.date)
        if current is None:
            FxRate.objects.create(
                currency=rate_doc.currency, date=rate_doc.date, rate=rate_doc.rate
            )
            rates["created"].append(label)
        else:
            current.rate = rate_doc.rate
            current.full_clean()
            current.save(update_fields=["rate", "updated_at"])
            rates["updated"].append(label)
    sections = {}
    if doc.price_book:
        sections["price_book"] = versions
    if doc.fx_rates:
        sections["fx_rates"] = rates
    return sections


def price_book_day_unlocked_check(*, path: str, day: Any) -> None:
    """Refuse (CatalogInUse) a change that would reprice a day an issued statement priced."""
    locked = PriceBookVersion.objects.filter(locked_through__gte=day).order_by("-locked_through")
    last = locked.first()
    if last is not None:
        raise CatalogInUse(
            f"{path}: {day} is on or before {last.locked_through}, the last day an issued "
            "statement priced; make the change from a later day",
            field=path,
        )


def _version_apply(index: int, doc: PriceBookVersionDoc) -> str:
    path = f"price_book[{index}]"
    rows = _rows(doc, path)
    content_hash = _hash(doc, rows)
    version = (
        PriceBookVersion.objects.select_for_update()
        .filter(effective_from=doc.effective_from)
        .first()
    )
    if version is not None and version.content_hash == content_hash:
        return "unchanged"
    if version is not None and version.locked_at is not None:
        raise CatalogInUse(
            f"{path}: the price book from {doc.effective_from} priced an issued statement "
            "and cannot change; add a version from a later day",
            field=path,
        )
    if version is None:
        price_book_day_unlocked_check(path=f"{path}.effective_from", day=doc.effective_from)
        version = PriceBookVersion(effective_from=doc.effective_from)
    created = version._state.adding
    before = None if created else {"note": version.note, "content_hash": version.content_hash,
                                   "prices": version.prices.count()}  # fmt: skip
    version.note = doc.note
    version.content_hash = content_hash
    version.full_clean()
    version.save()
    version.prices.all().delete()
    UpstreamPrice.objects.bulk_create(UpstreamPrice(version=version, **row) for row in rows)
    audit_record(
        action=f"price_book_version.{'create' if created else 'update'}",
        target_type="price_book_version",
        target_id=version.id,
        before=before,
        after={"effective_from": doc.effective_from, "note": doc.note,
               "content_hash": content_hash, "prices": rows},
    )  # fmt: skip
    return "created" if created else "updated"


def price_book_export() -> dict[str, Any]:
    """The price book and FX rates in the file's own shape (decimals as text)."""
    names = {
        UpstreamPrice.Kind.LLM: ("llm", ("provider", "model"), _LLM_FIELDS),
        UpstreamPrice.Kind.API: ("apis", ("provider", "endpoint"), _API_FIELDS),
        UpstreamPrice.Kind.COMPUTE: ("compute", ("service",), _COMPUTE_FIELDS),
    }
    versions = []
    for version in PriceBookVersion.objects.prefetch_related("prices"):
        out: dict[str, Any] = {"effective_from": version.effective_from.isoformat()}
        if version.note:
            out["note"] = version.note
        for price in version.prices.all():
            section, keys, fields = names[UpstreamPrice.Kind(price.kind)]
            item = {k: getattr(price, k) for k in keys}
            for name, column in fields.items():
                value = getattr(price, column)
                if value is not None:
                    item[name] = decimal_text(value)
            out.setdefault(section, []).append(item)
        versions.append(out)
    rates = [
        {"currency": r.currency, "date": r.date.isoformat(), "rate": decimal_text(r.rate)}
        for r in FxRate.objects.all()
    ]
    return {"price_book": versions, "fx_rates": rates}


def price_book_versions_lock(*, version_ids: set[Any], through: Any) -> None:
    """Lock the versions an issued statement used, through ``through`` (its last day): they
    never change again, and no change may take effect on or before that day."""
    now = timezone.now()
    for version in PriceBookVersion.objects.select_for_update().filter(id__in=version_ids):
        version.locked_at = version.locked_at or now
        if version.locked_through is None or version.locked_through < through:
            version.locked_through = through
        version.save(update_fields=["locked_at", "locked_through", "updated_at"])


def price_book_hash_refresh(*, version_id: Any) -> PriceBookVersion:
    """Recompute a version's content hash from its stored prices (after an edit in the
    admin), in the same form ``catalog_apply`` computes it from a file."""
    version = PriceBookVersion.objects.prefetch_related("prices").get(id=version_id)
    columns = ("kind", "provider", "model", "endpoint", "service", *_ALL_PRICES)
    rows = []
    for price in version.prices.all():
        row = {c: getattr(price, c) for c in columns}
        keys = _KEYS[UpstreamPrice.Kind(price.kind)]
        fields = _FIELDS[UpstreamPrice.Kind(price.kind)]
        rows.append(
            {
                "kind": price.kind,
                **{k: row[k] for k in keys},
                **{c: row[c] for c in fields.values()},
            }
        )
    version.content_hash = _hash_of(version.note, rows)
    version.save(update_fields=["content_hash", "updated_at"])
    return version
