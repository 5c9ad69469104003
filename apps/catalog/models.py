"""Rate cards (versioned, effective-dated prices for meters), plans and credit packs.

Written only by ``services.apply`` (the catalog file) and read through ``selectors``. A rate-card
version that a finalized invoice was priced with is locked: it never changes again, and a
changed price becomes a new version from its own ``effective_from``.
"""

from django.db import models

from apps.core.models import BaseModel, ExternalModel
from apps.metering.models import Meter

PRICE_DIGITS = 30  # up to 18 integer digits
PRICE_PLACES = 12  # unit prices like 0.000000150000 per token stay exact
AMOUNT_DIGITS = 20
AMOUNT_PLACES = 4  # fees and pack prices; every currency's minor unit fits


def _price_field() -> models.DecimalField:
    return models.DecimalField(
        max_digits=PRICE_DIGITS, decimal_places=PRICE_PLACES, null=True, blank=True
    )


class RateCard(ExternalModel):
    """A named price list in one currency; its prices live in versions."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    currency = models.CharField(max_length=3)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class RateCardVersion(ExternalModel):
    """The charges of a rate card from ``effective_from`` on. The version in effect at the start
    of a billing period prices that whole period; a version effective mid-period applies from
    the next period. ``locked_at`` is when a finalized invoice first used it; from then on it
    is history and never changes."""

    rate_card = models.ForeignKey(RateCard, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()  # 1, 2, ... in the order versions were created
    effective_from = models.DateTimeField()
    content_hash = models.CharField(max_length=64)  # of the charges, to tell a change
    locked_at = models.DateTimeField(null=True, blank=True)
    # The latest billing period start a finalized invoice priced with this version: a new
    # version may not take effect at or before it.
    locked_through = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rate_card__code", "effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["rate_card", "effective_from"], name="rate_card_version_effective_uniq"
            ),
            models.UniqueConstraint(fields=["rate_card", "number"], name="rate_card_version_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.rate_card.code} v{self.number}"


class Charge(BaseModel):
    """One price for one meter on a rate-card version (optionally for some dimension values)."""

    class Model(models.TextChoices):
        PER_UNIT = "per_unit"
        GRADUATED = "graduated"
        VOLUME = "volume"
        PACKAGE = "package"

    version = models.ForeignKey(RateCardVersion, on_delete=models.CASCADE, related_name="charges")
    position = models.PositiveSmallIntegerField()  # order in the file, and on the invoice
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="+")
    model = models.CharField(max_length=16, choices=Model.choices)
    description = models.CharField(max_length=200, blank=True)
    # per_unit: unit_price per package_size units; package: package_price per started package.
    unit_price = models.DecimalField(
        max_digits=PRICE_DIGITS, decimal_places=PRICE_PLACES, default=0
    )
    package_size = models.DecimalField(
        max_digits=PRICE_DIGITS, decimal_places=PRICE_PLACES, default=1
    )
    package_price = models.DecimalField(
        max_digits=PRICE_DIGITS, decimal_places=PRICE_PLACES, default=0
    )
    free_units = models.DecimalField(
        max_digits=PRICE_DIGITS, decimal_places=PRICE_PLACES, default=0
    )
    # Dimension equality, e.g. {"model": "gpt-4o"}: only those groups of the meter are priced.
    filters = models.JSONField(default=dict, blank=True)
    # [{"up_to": "100000" | null, "unit_price": "0.0002", "flat_fee": "0"}]: decimal strings;
    # up_to is the inclusive cumulative upper bound of units.
    tiers = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "position"], name="charge_position_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.version} #{self.position} {self.meter.code} {self.model}"


class Plan(ExternalModel):
    """What a subscription buys: a base fee per interval, a rate card, a minimum commitment and
    a trial. Invoices copy the amounts they bill, so changing a plan never changes them."""

    class Interval(models.TextChoices):
        MONTH = "month"
        YEAR = "year"

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    interval = models.CharField(max_length=8, choices=Interval.choices)
    currency = models.CharField(max_length=3)  # the rate card's
    rate_card = models.ForeignKey(RateCard, on_delete=models.PROTECT, related_name="plans")
    base_fee_amount = models.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, default=0
    )
    minimum_commitment_amount = models.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, default=0
    )
    trial_days = models.PositiveIntegerField(default=0)
    active = models.BooleanField(default=True)  # inactive plans take no new subscriptions

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class CreditPack(ExternalModel):
    """Prepaid credits for sale: ``price`` buys ``credits`` (both in ``currency``), which expire
    ``expires_after_days`` after purchase (never when null)."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)
    price_amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    credits_amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    expires_after_days = models.PositiveIntegerField(null=True, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class PriceBookVersion(BaseModel):
    """What upstream providers charge the operator, from ``effective_from`` (a UTC date) until
    the next version: one version prices each day, in the operator currency
    (``PERCALL_OPERATOR_CURRENCY``). Versioned like rate cards: ``locked_at`` is when an issued
    chargeback statement first used it, and from then on it never changes."""

    effective_from = models.DateField(unique=True)
    note = models.CharField(max_length=300, blank=True)  # where the prices come from
    content_hash = models.CharField(max_length=64)
    locked_at = models.DateTimeField(null=True, blank=True)
    locked_through = models.DateField(null=True, blank=True)  # the last day it priced

    class Meta:
        ordering = ["effective_from"]

    def __str__(self) -> str:
        return f"price book {self.effective_from}"


class UpstreamPrice(BaseModel):
    """One upstream price in a price-book version. Token prices are per 1,000,000 tokens;
    ``per_call`` and ``per_request`` are per call; ``per_credit`` per upstream credit (the
    event's ``credits``); ``per_ms`` per millisecond of the call's ``latency_ms``."""

    class Kind(models.TextChoices):
        LLM = "llm"  # provider + model: token prices
        API = "api"  # provider + endpoint: a third-party API
        COMPUTE = "compute"  # service: internal compute

    version = models.ForeignKey(PriceBookVersion, on_delete=models.CASCADE, related_name="prices")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    provider = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=128, blank=True)
    endpoint = models.CharField(max_length=200, blank=True)
    service = models.CharField(max_length=200, blank=True)
    input_per_mtok = _price_field()
    output_per_mtok = _price_field()
    cache_read_per_mtok = _price_field()  # defaults to the input price when absent
    cache_write_per_mtok = _price_field()  # defaults to the input price when absent
    reasoning_per_mtok = _price_field()  # defaults to the output price when absent
    per_call = _price_field()
    per_credit = _price_field()
    per_request = _price_field()
    per_ms = _price_field()

    class Meta:
        ordering = ["version", "kind", "provider", "model", "endpoint", "service"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "kind", "provider", "model", "endpoint", "service"],
                name="upstream_price_uniq",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.provider}/{self.model or self.endpoint or self.service}"


class FxRate(BaseModel):
    """How many units of the operator currency one unit of ``currency`` was worth on ``date``
    (UTC). An event's own cost is converted at the latest rate on or before its day."""

    currency = models.CharField(max_length=3)
    date = models.DateField()
    rate = models.DecimalField(max_digits=PRICE_DIGITS, decimal_places=PRICE_PLACES)

    class Meta:
        ordering = ["currency", "date"]
        constraints = [
            models.UniqueConstraint(fields=["currency", "date"], name="fx_rate_currency_date")
        ]

    def __str__(self) -> str:
        return f"{self.currency} {self.date} {self.rate}"
