"""The catalog in the admin. The catalog is managed as code (``manage.py catalog_apply FILE``);
here it can be inspected, and the parts that no finalized invoice depends on adjusted:

- rate cards are read-only (their name is hashed into every version, locked ones included);
- a version's own fields are read-only (``effective_from`` is its identity in the file), and
  its charges are editable only while it is unlocked, checked as ``catalog_apply`` checks a
  file, with ``content_hash`` recomputed after the save; a locked version is history;
- plans and credit packs are editable (invoices copy the amounts they bill), but not their
  codes (their identity in the file) nor a plan's currency (its rate card's).

Rows that others reference are protected by the models (PROTECT): the admin's delete page
lists what protects them and deletes nothing.
"""

import json
from decimal import Decimal
from typing import Any

import msgspec
from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from apps.catalog.errors import CatalogInUse, CatalogInvalid
from apps.catalog.models import (
    Charge,
    CreditPack,
    FxRate,
    Plan,
    PriceBookVersion,
    RateCard,
    RateCardVersion,
    UpstreamPrice,
)
from apps.catalog.services.apply import charge_row_check, version_hash_refresh
from apps.catalog.services.document import TierDoc, as_json, decimal_text
from apps.catalog.services.price_book import (
    price_book_day_unlocked_check,
    price_book_hash_refresh,
)
from apps.core.admin import AuditedAdmin
from apps.core.money import currency_is_known, minor_units

_CHARGE_FIELDS = (
    "position",
    "meter",
    "model",
    "description",
    "unit_price",
    "package_size",
    "package_price",
    "free_units",
    "filters",
    "tiers",
)
_VERSION_FIELDS = (
    "rate_card",
    "number",
    "effective_from",
    "content_hash",
    "locked_at",
    "locked_through",
)
_VERSION_ROW_FIELDS = ("number", "effective_from", "locked_at", "locked_through")


def _unlocked(version: RateCardVersion | None) -> bool:
    return version is not None and version.locked_at is None


class _DecimalJSONDecoder(json.JSONDecoder):
    """JSON numbers as exact decimals: a tier price typed as 0.0002 is never a float."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["parse_float"] = Decimal
        super().__init__(*args, **kwargs)


class _DecimalJSONEncoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, Decimal):
            return decimal_text(o)
        return super().default(o)


def _json_field(help_text: str) -> forms.JSONField:
    return forms.JSONField(
        required=False,
        decoder=_DecimalJSONDecoder,
        encoder=_DecimalJSONEncoder,
        help_text=help_text,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
    )


class ChargeForm(forms.ModelForm):
    """Tiers and filters stored exactly as ``catalog_apply`` stores a file's: decimals as text,
    every tier with ``up_to``, ``unit_price`` and ``flat_fee``, filters sorted."""

    filters = _json_field('{"model": "gpt-4o"}: only these dimension values are priced')
    tiers = _json_field(
        '[{"up_to": "100000", "unit_price": "0.0002", "flat_fee": "0"}, {"up_to": null, ...}]:'
        " up_to is the inclusive cumulative upper bound of units"
    )

    class Meta:
        model = Charge
        fields = _CHARGE_FIELDS

    def clean_filters(self) -> dict[str, str]:
        value = self.cleaned_data["filters"] or {}
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ValidationError('Give an object of dimension names and text values: {"a": "b"}')
        return dict(sorted(value.items()))

    def clean_tiers(self) -> list[dict[str, Any]]:
        try:
            tiers = msgspec.convert(self.cleaned_data["tiers"] or [], list[TierDoc])
        except msgspec.ValidationError as exc:
            raise ValidationError(f"Not a list of tiers: {exc}") from exc
        return [
            as_json({"up_to": t.up_to, "unit_price": t.unit_price, "flat_fee": t.flat_fee})
            for t in tiers
        ]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if self.errors or not self.has_changed():
            return cleaned
        charge = Charge(**{name: cleaned.get(name) for name in _CHARGE_FIELDS})
        try:
            charge_row_check(charge=charge)
        except CatalogInvalid as exc:
            field = exc.field if exc.field in self.fields else None
            self.add_error(field, exc.message)
        return cleaned


class ChargeFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        kept = [
            form
            for form in self.forms
            if (form.instance.pk is not None or form.has_changed())
            and not form.cleaned_data.get("DELETE", False)
        ]
        if not kept:
            raise ValidationError("A rate card version needs at least one charge.")


class ChargeInline(admin.TabularInline):
    """Editable only while the version is unlocked (the parent decides)."""

    model = Charge
    form = ChargeForm
    formset = ChargeFormSet
    fields = _CHARGE_FIELDS
    extra = 0
    ordering = ["position"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Charge]:
        return super().get_queryset(request).select_related("meter")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _unlocked(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _unlocked(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _unlocked(obj) and super().has_delete_permission(request, obj)


class VersionInline(admin.TabularInline):
    model = RateCardVersion
    fields = _VERSION_ROW_FIELDS
    readonly_fields = _VERSION_ROW_FIELDS
    show_change_link = True
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RateCard)
class RateCardAdmin(AuditedAdmin):
    """Read-only: rate cards come from the catalog file; their name is part of every version's
    content hash, locked versions included."""

    list_display = ["code", "name", "currency", "version_count"]
    list_filter = ["currency"]
    search_fields = ["code", "name"]
    inlines = [VersionInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RateCard]:
        return super().get_queryset(request).annotate(version_count=Count("versions"))

    @admin.display(description="versions", ordering="version_count")
    def version_count(self, obj: Any) -> int:
        return obj.version_count

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LockedFilter(admin.SimpleListFilter):
    title = "locked"
    parameter_name = "locked"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Locked"), ("no", "Unlocked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("yes", "no"):
            return queryset.filter(locked_at__isnull=self.value() == "no")
        return queryset


@admin.register(RateCardVersion)
class RateCardVersionAdmin(AuditedAdmin):
    """A locked version (a finalized invoice was priced with it) is read-only, charges and all,
    and cannot be deleted. An unlocked one's charges are editable; saving them recomputes
    ``content_hash`` so ``catalog_apply`` still tells whether its file differs."""

    list_display = [
        "rate_card",
        "number",
        "currency",
        "effective_from",
        "locked",
        "locked_through",
        "charge_count",
    ]
    list_filter = [LockedFilter, "rate_card__currency", "rate_card"]
    list_select_related = ["rate_card"]
    search_fields = ["rate_card__code", "rate_card__name"]
    date_hierarchy = "effective_from"
    fields = _VERSION_FIELDS
    readonly_fields = _VERSION_FIELDS
    inlines = [ChargeInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RateCardVersion]:
        return super().get_queryset(request).annotate(charge_count=Count("charges"))

    @admin.display(description="currency", ordering="rate_card__currency")
    def currency(self, obj: RateCardVersion) -> str:
        return obj.rate_card.currency

    @admin.display(description="locked", boolean=True, ordering="locked_at")
    def locked(self, obj: RateCardVersion) -> bool:
        return obj.locked_at is not None

    @admin.display(description="charges", ordering="charge_count")
    def charge_count(self, obj: Any) -> int:
        return obj.charge_count

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> RateCardVersion | None:
        obj = super().get_object(request, object_id, from_field)
        if obj is not None and request.method == "POST":
            # The admin's view runs in one transaction: hold the row so that a finalization
            # cannot lock the version between the check below and the save.
            obj = RateCardVersion.objects.select_for_update().get(pk=obj.pk)
        return obj

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions come from the catalog file (numbers, effective dates)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (obj is None or _unlocked(obj)) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (obj is None or _unlocked(obj)) and super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        # The changelist's bulk delete asks has_delete_permission without a row.
        if queryset.filter(locked_at__isnull=False).exists():
            raise PermissionDenied("Locked rate-card versions cannot be deleted.")
        super().delete_queryset(request, queryset)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if any(formset.has_changed() for formset in formsets):
            version_hash_refresh(version_id=form.instance.pk)


class PlanForm(forms.ModelForm):
    class Meta:
        model = Plan
        fields = [
            "code",
            "name",
            "interval",
            "rate_card",
            "base_fee_amount",
            "minimum_commitment_amount",
            "trial_days",
            "active",
        ]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        card = cleaned.get("rate_card")
        if card is None:
            return cleaned
        if not self.instance._state.adding and card.currency != self.instance.currency:
            self.add_error(
                "rate_card",
                f"{card.code} is in {card.currency}; plan {self.instance.code} bills in "
                f"{self.instance.currency}",
            )
        for name in ("base_fee_amount", "minimum_commitment_amount"):
            _money_check(self, name, card.currency)
        return cleaned


def _money_check(form: forms.ModelForm, name: str, currency: str) -> None:
    value = form.cleaned_data.get(name)
    if value is None:
        return
    if value < 0:
        form.add_error(name, f"{value} must be at least 0")
    elif value != round(value, minor_units(currency)):
        form.add_error(name, f"{value} has more decimals than {currency} has")


@admin.register(Plan)
class PlanAdmin(AuditedAdmin):
    """Editable: invoices copy what they bill. The currency follows the rate card, which may
    only be swapped for one in the same currency."""

    form = PlanForm
    list_display = [
        "code",
        "name",
        "interval",
        "currency",
        "rate_card",
        "base_fee_amount",
        "minimum_commitment_amount",
        "trial_days",
        "active",
    ]
    list_filter = ["active", "interval", "currency"]
    list_select_related = ["rate_card"]
    search_fields = ["code", "name"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["code", "currency"] if obj is not None else ["currency"]

    def save_model(self, request: HttpRequest, obj: Plan, form: Any, change: bool) -> None:
        obj.currency = obj.rate_card.currency
        super().save_model(request, obj, form, change)


class CreditPackForm(forms.ModelForm):
    class Meta:
        model = CreditPack
        fields = [
            "code",
            "name",
            "currency",
            "price_amount",
            "credits_amount",
            "expires_after_days",
            "active",
        ]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        currency = cleaned.get("currency")
        if currency is None:
            return cleaned
        if not currency_is_known(currency):
            self.add_error("currency", f"{currency!r} is not an ISO 4217 code")
            return cleaned
        for name in ("price_amount", "credits_amount"):
            _money_check(self, name, currency)
        credits = cleaned.get("credits_amount")
        if credits is not None and credits <= 0:
            self.add_error("credits_amount", f"{credits} must be more than 0")
        return cleaned


@admin.register(CreditPack)
class CreditPackAdmin(AuditedAdmin):
    """Editable: a purchase copies the pack's price and credits into its invoice and grant."""

    form = CreditPackForm
    list_display = [
        "code",
        "name",
        "currency",
        "price_amount",
        "credits_amount",
        "expires_after_days",
        "active",
    ]
    list_filter = ["active", "currency"]
    search_fields = ["code", "name"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["code"] if obj is not None else []


class UpstreamPriceInline(admin.TabularInline):
    model = UpstreamPrice
    extra = 0
    fields = (
        "kind",
        "provider",
        "model",
        "endpoint",
        "service",
        "input_per_mtok",
        "output_per_mtok",
        "cache_read_per_mtok",
        "cache_write_per_mtok",
        "reasoning_per_mtok",
        "per_call",
        "per_credit",
        "per_request",
        "per_ms",
    )

    def _editable(self, obj: PriceBookVersion | None) -> bool:
        return obj is None or obj.locked_at is None

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_delete_permission(request, obj)


@admin.register(PriceBookVersion)
class PriceBookVersionAdmin(AuditedAdmin):
    """Editable until an issued statement used it; then history, read-only. The catalog file
    is the other way in (``price_book:``), and the starter file is in apps/catalog/starter."""

    list_display = ("effective_from", "note", "locked_at", "locked_through")
    readonly_fields = ("content_hash", "locked_at", "locked_through")
    inlines = [UpstreamPriceInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.locked_at is not None:
            return ("effective_from", "note", *self.readonly_fields)
        return self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None or obj.locked_at is None

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        _unlocked_day_check(obj.effective_from)
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        price_book_hash_refresh(version_id=form.instance.id)


def _unlocked_day_check(day: Any) -> None:
    """The admin keeps the file's rule: nothing may change prices on or before the last day
    an issued statement priced."""
    try:
        price_book_day_unlocked_check(path="effective_from", day=day)
    except CatalogInUse as exc:
        raise PermissionDenied(exc.message) from exc


@admin.register(FxRate)
class FxRateAdmin(AuditedAdmin):
    """FX rates on or before the last day an issued statement priced cannot change."""

    list_display = ("currency", "date", "rate")
    list_filter = ("currency",)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        _unlocked_day_check(obj.date)
        if change and obj.pk:
            _unlocked_day_check(FxRate.objects.get(pk=obj.pk).date)
        super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        _unlocked_day_check(obj.date)
        super().delete_model(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a rate is history: correct it from a later date instead
