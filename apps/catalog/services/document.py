"""The catalog file: its shape, how it is read (YAML or JSON, numbers exact), and its checks.

A file is read into ``CatalogDoc`` by msgspec (shape and types, with the path of any mistake),
then ``catalog_check`` applies the rules a type cannot state. Every problem raises
``CatalogInvalid`` whose ``field`` is the path in the file, e.g.
``rate_cards[0].charges[2].tiers[1].up_to``; nothing is applied from a file that has one.
"""

import json
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
import yaml

from apps.catalog.errors import CatalogInvalid

Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Name = Annotated[str, msgspec.Meta(max_length=200)]
Aggregation = Literal["count", "sum", "max", "unique_count", "latest"]
PricingModelName = Literal["per_unit", "graduated", "volume", "package"]


class TierDoc(msgspec.Struct, forbid_unknown_fields=True):
    up_to: Decimal | None
    unit_price: Decimal = Decimal(0)
    flat_fee: Decimal = Decimal(0)


class ChargeDoc(msgspec.Struct, forbid_unknown_fields=True):
    meter: str
    model: PricingModelName
    unit_price: Decimal | None = None
    package_size: Decimal | None = None
    package_price: Decimal | None = None
    free_units: Decimal = Decimal(0)
    filter: dict[str, str] = {}
    tiers: list[TierDoc] = []
    description: Name = ""


class MeterDoc(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    event_type: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    aggregation: Aggregation
    field: str = ""
    filter: dict[str, str] = {}
    group_by: list[str] = []
    name: Name = ""


class RateCardDoc(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    currency: str
    effective_from: Annotated[datetime, msgspec.Meta(tz=True)]
    charges: list[ChargeDoc]
    name: Name = ""


class PlanDoc(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    name: Name
    interval: Literal["month", "year"]
    rate_card: str
    base_fee: Decimal = Decimal(0)
    minimum_commitment: Decimal = Decimal(0)
    trial_days: Annotated[int, msgspec.Meta(ge=0, le=3660)] = 0
    active: bool = True


class CreditPackDoc(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    name: Name
    price: Decimal
    credits: Decimal
    currency: str | None = None  # default: the operator's currency
    expires_after_days: Annotated[int, msgspec.Meta(ge=1, le=36600)] | None = None
    active: bool = True


Label = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class LlmPriceDoc(msgspec.Struct, forbid_unknown_fields=True):
    """Token prices of one model, per 1,000,000 tokens."""

    provider: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None


class ApiPriceDoc(msgspec.Struct, forbid_unknown_fields=True):
    provider: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    endpoint: Label
    per_call: Decimal | None = None
    per_credit: Decimal | None = None


class ComputePriceDoc(msgspec.Struct, forbid_unknown_fields=True):
    service: Label
    per_request: Decimal | None = None
    per_ms: Decimal | None = None


class PriceBookVersionDoc(msgspec.Struct, forbid_unknown_fields=True):
    effective_from: date
    note: Annotated[str, msgspec.Meta(max_length=300)] = ""
    llm: list[LlmPriceDoc] = []
    apis: list[ApiPriceDoc] = []
    compute: list[ComputePriceDoc] = []


class FxRateDoc(msgspec.Struct, forbid_unknown_fields=True):
    currency: str
    date: date
    rate: Decimal


class CatalogDoc(msgspec.Struct, forbid_unknown_fields=True):
    meters: list[MeterDoc] = []
    rate_cards: list[RateCardDoc] = []
    plans: list[PlanDoc] = []
    credit_packs: list[CreditPackDoc] = []
    price_book: list[PriceBookVersionDoc] = []
    fx_rates: list[FxRateDoc] = []


class _ExactLoader(yaml.SafeLoader):
    """YAML with its floats read as exact decimals from their text (0.0002 stays 0.0002) and
    its timestamps left as text (an unquoted 2026-01-01T00:00:00Z is not a naive datetime)."""


def _decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        return Decimal(text)
    except ArithmeticError as exc:
        raise yaml.constructor.ConstructorError(None, None, f"{text!r}: not a number") from exc


def _text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _decimal)
_ExactLoader.add_constructor("tag:yaml.org,2002:timestamp", _text)


def catalog_parse(*, content: bytes | str, content_type: str = "") -> CatalogDoc:
    """Read a catalog file (JSON when ``content_type`` says so or it starts with '{', else
    YAML) into its document, or raise CatalogInvalid naming the path."""
    try:
        text = content.decode() if isinstance(content, bytes) else content
    except UnicodeDecodeError as exc:
        raise CatalogInvalid(f"the file is not UTF-8 text: {exc}") from exc
    try:
        if "json" in content_type or text.lstrip().startswith("{"):
            raw = json.loads(text, parse_float=Decimal)
        else:
            raw = yaml.load(text, Loader=_ExactLoader)  # noqa: S506 - a SafeLoader subclass
    except (ValueError, yaml.YAMLError) as exc:
        raise CatalogInvalid(f"the file is not valid YAML or JSON: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise CatalogInvalid("the file must be a mapping with meters, rate_cards, plans, ...")
    try:
        return msgspec.convert(raw, CatalogDoc)
    except msgspec.ValidationError as exc:
        raise _from_validation(exc) from exc


_PATH = re.compile(r"^(?P<message>.*) - at `\$(?P<path>[^`]*)`$")


def _from_validation(exc: msgspec.ValidationError) -> CatalogInvalid:
    """msgspec's 'Expected `str`, got `int` - at `$.plans[0].code`' as path: message."""
    match = _PATH.match(str(exc))
    if match is None:
        return CatalogInvalid(str(exc))
    path = match["path"].lstrip(".")
    message = match["message"]
    if "Object contains unknown field" in message:
        message = f"unknown field {message.rsplit(' ', 1)[-1]}"
    return CatalogInvalid(f"{path}: {message}" if path else message, field=path or None)


def invalid(path: str, message: str) -> CatalogInvalid:
    return CatalogInvalid(f"{path}: {message}", field=path)


PRICE_PLACES = 12  # prices keep 12 decimal places: sub-micro unit prices stay exact
PRICE_INTEGER_DIGITS = 18


def decimal_check(path: str, value: Decimal | None, *, places: int = PRICE_PLACES) -> None:
    """A price or amount of the file: absent, or a finite number of at least 0 with at most
    ``places`` decimals and 18 integer digits; else CatalogInvalid naming ``path``."""
    if value is None:
        return
    if not value.is_finite() or value < 0:
        raise invalid(path, f"{value} must be a number of at least 0")
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > places:
        raise invalid(path, f"{value} has more than {places} decimal places")
    if value.adjusted() >= PRICE_INTEGER_DIGITS:
        raise invalid(path, f"{value} has more than {PRICE_INTEGER_DIGITS} integer digits")


def decimal_text(value: Decimal) -> str:
    """A decimal as plain text without exponent or trailing zeros: 1E+2 is '100', 0.50 '0.5'."""
    text = format(value.normalize(), "f")
    return text


def as_json(value: Any) -> Any:
    """A document fragment with decimals as text, as the database's JSON columns keep them."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    return value
