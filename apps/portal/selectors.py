"""Reads the portal needs that no lower app offers as a selector: a person's memberships, a
tenant's keys, webhook endpoints and deliveries, packs on sale, and the usage explorer over the
hourly rollups. Every read of tenant data takes the tenant explicitly."""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db.models import Count, QuerySet, Sum
from django.http import Http404

from apps.alerts.models import WebhookDelivery, WebhookEndpoint
from apps.catalog.models import CreditPack
from apps.metering.models import Meter, MeterRollup, UsageRollup
from apps.tenants.models import ApiKey, Membership

# What the explorer may filter and group by: rollup dimensions a partner knows.
EXPLORER_DIMENSIONS = ("feature", "endpoint", "model", "event_type")
# What it may measure: rollup sums, in units (never money: costs are the operator's).
EXPLORER_MEASURES = ("events", "input_tokens", "output_tokens", "quantity", "errors")
DELIVERIES_SHOWN = 50


def membership_list(*, user_id: Any) -> list[Membership]:
    """The person's memberships with their tenants, by tenant name."""
    if user_id is None:
        return []
    return list(
        Membership.objects.filter(user_id=user_id)
        .select_related("tenant")
        .order_by("tenant__name", "tenant__external_id")
    )


def team_list(*, tenant_id: UUID) -> QuerySet[Membership]:
    """The tenant's members with their users, by username."""
    return (
        Membership.objects.filter(tenant_id=tenant_id)
        .select_related("user")
        .order_by("user__username")
    )


def api_key_list(*, tenant_id: UUID) -> QuerySet[ApiKey]:
    """The tenant's own keys (never operator-wide ones), newest first."""
    return ApiKey.objects.filter(tenant_id=tenant_id).order_by("-created_at")


def api_key_get(*, tenant_id: UUID, prefix: str) -> ApiKey:
    """One of the tenant's keys by prefix; a foreign or unknown prefix is a 404."""
    found = api_key_list(tenant_id=tenant_id).filter(prefix=prefix).first()
    if found is None:
        raise Http404("no such key")
    return found


def webhook_endpoint_list(*, tenant_id: UUID) -> QuerySet[WebhookEndpoint]:
    """The tenant's webhook endpoints, with how many deliveries each has had."""
    return (
        WebhookEndpoint.objects.filter(tenant_id=tenant_id)
        .annotate(delivery_count=Count("deliveries"))
        .order_by("created_at")
    )


def webhook_delivery_list(*, endpoint: WebhookEndpoint) -> list[WebhookDelivery]:
    """An endpoint's latest deliveries with their tries (the caller got ``endpoint`` through a
    tenant-scoped get)."""
    return list(
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .select_related("message")
        .prefetch_related("log")
        .order_by("-created_at")[:DELIVERIES_SHOWN]
    )


def webhook_delivery_get(*, endpoint: WebhookEndpoint, delivery_id: UUID) -> WebhookDelivery:
    """One of ``endpoint``'s deliveries; any other id is a 404."""
    found = (
        WebhookDelivery.objects.filter(endpoint=endpoint, id=delivery_id)
        .select_related("message")
        .first()
    )
    if found is None:
        raise Http404("no such delivery")
    return found


def credit_pack_list(*, currency: str) -> QuerySet[CreditPack]:
    """Packs on sale in the tenant's currency, cheapest first."""
    return CreditPack.objects.filter(active=True, currency=currency).order_by("price_amount")


def meter_list() -> QuerySet[Meter]:
    return Meter.objects.order_by("code")


@dataclass(frozen=True)
class Exploration:
    """Usage per local day and group: ``days`` in order, ``series`` group label -> value per
    day and ``totals`` (group label, sum), both largest group first."""

    days: list[str]
    series: dict[str, list[Decimal]]
    totals: list[tuple[str, Decimal]] = field(default_factory=list)


def _label(row: dict[str, Any], group_by: str | None) -> str:
    if group_by is None:
        return "all"
    return row[group_by] or "(none)"


def usage_explore(
    *,
    tenant_id: UUID,
    timezone_name: str,
    start: datetime,
    end: datetime,
    filters: dict[str, str],
    group_by: str | None,
    measure: str,
) -> Exploration:
    """``measure`` per local day of ``timezone_name`` in ``[start, end)``, narrowed by
    ``filters`` (dimension -> value) and split by ``group_by``, from the hourly rollups in one
    query."""
    rows = UsageRollup.objects.filter(tenant_id=tenant_id, hour__gte=start, hour__lt=end)
    rows = rows.filter(**{f: v for f, v in filters.items() if f in EXPLORER_DIMENSIONS})
    fields = [group_by] if group_by else []
    # Summed per UTC hour in SQL and put in local days here: a rollup hour lies in the local
    # day its start does (what truncating it in SQL would give too), and SQLite truncates
    # in a Python function per row, ten times slower than this.
    grouped = rows.values("hour", *fields).annotate(value=Sum(measure)).order_by()
    zone = ZoneInfo(timezone_name)
    cells: dict[str, dict[str, Decimal]] = {}
    seen: set[str] = set()
    for row in grouped:
        day = row["hour"].astimezone(zone).date().isoformat()
        seen.add(day)
        by_day = cells.setdefault(_label(row, group_by), {})
        by_day[day] = by_day.get(day, Decimal(0)) + Decimal(row["value"] or 0)
    days = sorted(seen)
    totals = sorted(
        ((label, sum(by_day.values(), Decimal(0))) for label, by_day in cells.items()),
        key=lambda item: (-item[1], item[0]),
    )
    # Largest group first, in the chart's legend as in the totals.
    series = {label: [cells[label].get(d, Decimal(0)) for d in days] for label, _ in totals}
    return Exploration(days=days, series=series, totals=totals)


# Meters whose hourly figures add up to a day's: counts and sums (a maximum, a latest value or
# a unique count of one hour says nothing about the day's).
_ADDITIVE = {Meter.Aggregation.COUNT: "events", Meter.Aggregation.SUM: "sum"}


def meter_usage_by_day(
    *, tenant_id: UUID, timezone_name: str, start: datetime, end: datetime
) -> Exploration:
    """Each count or sum meter's quantity per local day of ``timezone_name`` in
    ``[start, end)``, from the hourly meter rollups in one query; series by meter code."""
    rows = (
        MeterRollup.objects.filter(
            tenant_id=tenant_id,
            hour__gte=start,
            hour__lt=end,
            meter__aggregation__in=list(_ADDITIVE),
        )
        .values("hour", "meter__code", "meter__aggregation")
        .annotate(events=Sum("events"), sum=Sum("sum"))
        .order_by()
    )
    zone = ZoneInfo(timezone_name)
    cells: dict[str, dict[str, Decimal]] = {}
    for row in rows:
        day = row["hour"].astimezone(zone).date().isoformat()
        value = Decimal(row[_ADDITIVE[row["meter__aggregation"]]] or 0)
        by_day = cells.setdefault(row["meter__code"], {})
        by_day[day] = by_day.get(day, Decimal(0)) + value
    days = sorted({day for by_day in cells.values() for day in by_day})
    totals = sorted(
        ((code, sum(by_day.values(), Decimal(0))) for code, by_day in cells.items()),
        key=lambda item: (-item[1], item[0]),
    )
    series = {code: [cells[code].get(d, Decimal(0)) for d in days] for code, _ in totals}
    return Exploration(days=days, series=series, totals=totals)


def dimension_values(*, tenant_id: UUID, start: datetime, end: datetime) -> dict[str, list[str]]:
    """The values each explorer dimension took for the tenant in the range (for the filter
    choices), in one query."""
    rows = (
        UsageRollup.objects.filter(tenant_id=tenant_id, hour__gte=start, hour__lt=end)
        .values_list(*EXPLORER_DIMENSIONS)
        .distinct()
    )
    seen: dict[str, set[str]] = {name: set() for name in EXPLORER_DIMENSIONS}
    for values in rows:
        for name, value in zip(EXPLORER_DIMENSIONS, values, strict=True):
            if value:
                seen[name].add(value)
    return {name: sorted(found) for name, found in seen.items()}
