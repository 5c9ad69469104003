"""Detectors over usage: events no subscription covers, events no charge prices, rollups that
disagree with the raw events, and calls nothing costs.

Each runs a grouped query per timezone in use (tenants of one timezone share a month window)
or per rate-card version, never one per tenant; raw events are read only for what the rollups
cannot answer (the exact time of an event, a filter on a JSON property, the rollups' own
check) and for up to ``SAMPLE_SIZE`` sample ids per finding.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db.models import Count, F, Q, QuerySet, Sum, Value, Window
from django.db.models.functions import RowNumber, TruncHour

from apps.assurance.scope import SAMPLE_SIZE, Detected, ScanScope, cost_by_type, cost_share
from apps.catalog.models import RateCardVersion
from apps.core.periods import BillingPeriod
from apps.costs.models import CostRollup
from apps.metering.models import (
    ROLLUP_DIMENSIONS,
    Event,
    Meter,
    RollupPending,
    UsageRollup,
)
from apps.metering.selectors import purged_hours

ZERO = Decimal(0)
_ROLLUP_KEYS = {d for d in ROLLUP_DIMENSIONS if d != "cost_currency"}


@dataclass
class UsageFigures:
    """Per tenant, in events: what the month received and how much of it a charge prices."""

    events: dict[UUID, int] = field(default_factory=dict)
    billable: dict[UUID, int] = field(default_factory=dict)
    found: list[Detected] = field(default_factory=list)


def event_samples(query: Q, by: tuple[str, ...]) -> dict[tuple[Any, ...], list[str]]:
    """Up to ``SAMPLE_SIZE`` event ids (earliest first) per group of ``by``, in one query."""
    ranked = (
        Event.objects.filter(query)
        .annotate(
            n=Window(
                RowNumber(), partition_by=[F(b) for b in by], order_by=["timestamp", "event_id"]
            )
        )
        .filter(n__lte=SAMPLE_SIZE)
        .values_list(*by, "event_id")
    )
    found: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for *key, event_id in ranked:
        found[tuple(key)].append(event_id)
    return found


def usage_check(*, scope: ScanScope, samples: bool = True) -> UsageFigures:
    """The month's stored and billable events per tenant, and the findings of usage nobody
    could bill; ``samples=False`` skips their sample event ids (the report needs none)."""
    figures = UsageFigures()
    costs = cost_by_type(scope)
    for window, tenant_ids in scope.by_window().items():
        rows = (
            UsageRollup.objects.filter(
                tenant_id__in=tenant_ids, hour__gte=window.start, hour__lt=window.end
            )
            .values("tenant_id")
            .annotate(n=Sum("events"))
            .order_by()
        )
        for row in rows:
            figures.events[row["tenant_id"]] = int(row["n"] or 0)
    figures.found.extend(_no_subscription(scope, figures.events, costs, samples))
    figures.found.extend(_unpriced(scope, figures, costs, samples))
    return figures


# --- no_subscription ------------------------------------------------------------------------


def _no_subscription(
    scope: ScanScope,
    events: dict[UUID, int],
    costs: dict[tuple[UUID, str], tuple[int, Decimal]],
    with_samples: bool = True,
) -> list[Detected]:
    """Events at a moment no subscription of their tenant was active: every event of a month
    without one (counted from the rollups), else the events in the gaps (from raw events)."""
    counts: dict[UUID, int] = {}
    gaps_q = Q(pk__in=[])
    for tenant_id, tm in scope.months.items():
        if not events.get(tenant_id):
            continue
        gaps = tm.uncovered()
        if not tm.subscriptions:
            counts[tenant_id] = events[tenant_id]
        for gap in gaps:
            gaps_q |= Q(tenant_id=tenant_id, timestamp__gte=gap.start, timestamp__lt=gap.end)
    partial = [t for t, tm in scope.months.items() if tm.subscriptions and events.get(t)]
    if partial:
        rows = (
            Event.objects.filter(gaps_q, tenant_id__in=partial)
            .values("tenant_id")
            .annotate(n=Count("*"))
            .order_by()
        )
        counts.update({r["tenant_id"]: r["n"] for r in rows if r["n"]})
    if not counts:
        return []
    samples = (
        event_samples(gaps_q & Q(tenant_id__in=list(counts)), ("tenant_id",))
        if with_samples
        else {}
    )
    found = []
    for tenant_id, n in sorted(counts.items(), key=lambda item: str(item[0])):
        types = sorted({t for (tenant, t) in costs if tenant == tenant_id})
        found.append(
            Detected(
                category="no_subscription",
                tenant_id=tenant_id,
                subject="",
                quantity=Decimal(n),
                unit="events",
                amount=cost_share(costs, tenant_id, types, n) if types else ZERO,
                currency=scope.operator_currency,
                basis="cost",
                evidence={
                    "events": n,
                    "month_events": events[tenant_id],
                    "uncovered": [
                        [g.start.isoformat(), g.end.isoformat()]
                        for g in scope.months[tenant_id].uncovered()
                    ],
                    "sample_event_ids": samples.get((tenant_id,), []),
                },
            )
        )
    return found


# --- unpriced -------------------------------------------------------------------------------


def _priced_q(version: RateCardVersion, *, raw: bool) -> Q | None:
    """Events some charge of the version prices: of its meter's type, through the meter's
    filters and the charge's own. ``raw``: as lookups on raw events, else on usage rollups."""
    priced: Q | None = None
    for charge in version.charges.all():
        meter = charge.meter
        one = Q(**{"type" if raw else "event_type": meter.event_type})
        for key, value in {**(meter.filters or {}), **(charge.filters or {})}.items():
            column = key
            if raw and key.startswith("properties."):
                column = "properties__" + key.removeprefix("properties.")
            one &= Q(**{column: value})
        priced = one if priced is None else priced | one
    return priced


def _unpriced_q(version: RateCardVersion) -> Q:
    """Raw events no charge of the version prices. Spelled out rather than ``~priced``: SQL
    negates a missing JSON property to NULL, which would drop exactly the events sought."""
    unpriced = Q()
    for charge in version.charges.all():
        meter = charge.meter
        misses = ~Q(type=meter.event_type)
        for key, value in {**(meter.filters or {}), **(charge.filters or {})}.items():
            if key.startswith("properties."):
                column = "properties__" + key.removeprefix("properties.")
                misses |= ~Q(**{column: value}) | Q(**{f"{column}__isnull": True})
            else:
                misses |= ~Q(**{key: value})
        unpriced &= misses
    return unpriced


def _needs_raw(version: RateCardVersion) -> bool:
    keys = {
        key
        for charge in version.charges.all()
        for key in {**(charge.meter.filters or {}), **(charge.filters or {})}
    }
    return not keys <= _ROLLUP_KEYS


def _priced_counts(
    version: RateCardVersion, window: BillingPeriod, tenant_ids: list[UUID]
) -> list[tuple[UUID, str, int, int, int]]:
    """(tenant, event type, events, events a charge prices, child spans) in the window: from
    the usage rollups, or from raw events when a filter reads a JSON property the rollups do
    not keep. A child span has a parent in its trace: how a call was served, not a call."""
    raw = _needs_raw(version)
    priced = _priced_q(version, raw=raw)
    rows: QuerySet[Any, Any]
    if raw:
        rows = Event.objects.filter(
            tenant_id__in=tenant_ids, timestamp__gte=window.start, timestamp__lt=window.end
        ).values("tenant_id", event_type=F("type"))
        measures: dict[str, Any] = {"total": Count("*")}
        measures["priced"] = Count("event_id", filter=priced) if priced else Value(0)
        measures["children"] = Count("event_id", filter=Q(parent_span_id__isnull=False))
    else:
        rows = UsageRollup.objects.filter(
            tenant_id__in=tenant_ids, hour__gte=window.start, hour__lt=window.end
        ).values("tenant_id", "event_type")
        measures = {"total": Sum("events")}
        measures["priced"] = Sum("events", filter=priced) if priced else Value(0)
        measures["children"] = Sum("traced_calls") - Sum("root_calls")
    return [
        (
            r["tenant_id"],
            r["event_type"],
            int(r["total"] or 0),
            int(r["priced"] or 0),
            int(r["children"] or 0),
        )
        for r in rows.annotate(**measures).order_by("tenant_id", "event_type")
    ]


def _unpriced(
    scope: ScanScope,
    figures: UsageFigures,
    costs: dict[tuple[UUID, str], tuple[int, Decimal]],
    with_samples: bool = True,
) -> list[Detected]:
    """Events of a tenant with a rate card that no charge of it prices, per event type.
    Child spans of a type no meter measures at all are left out: they are the telemetry of
    how a call was served (an internal service, a tool run), costed but never sold by the
    event; a root or untraced event of such a type is a call nothing prices."""
    metered = set(Meter.objects.values_list("event_type", flat=True))
    groups: dict[tuple[Any, Any], list[UUID]] = defaultdict(list)
    versions: dict[Any, RateCardVersion] = {}
    for tenant_id, tm in scope.months.items():
        if tm.version is not None and figures.events.get(tenant_id):
            versions[tm.version.id] = tm.version
            groups[(tm.version.id, tm.window)].append(tenant_id)
    found: list[Detected] = []
    for (version_id, window), tenant_ids in groups.items():
        version = versions[version_id]
        unpriced: dict[tuple[UUID, str], tuple[int, int]] = {}
        for tenant_id, event_type, total, billable, children in _priced_counts(
            version, window, tenant_ids
        ):
            figures.billable[tenant_id] = figures.billable.get(tenant_id, 0) + billable
            if event_type not in metered:
                total -= children
            if total > billable:
                unpriced[(tenant_id, event_type)] = (total, billable)
        if not unpriced:
            continue
        sampled = Q(
            tenant_id__in=list({t for t, _ in unpriced}),
            type__in=list({e for _, e in unpriced}),
            timestamp__gte=window.start,
            timestamp__lt=window.end,
        )
        calls = Q(type__in=metered) | Q(parent_span_id__isnull=True)
        samples = (
            event_samples(sampled & _unpriced_q(version) & calls, ("tenant_id", "type"))
            if with_samples
            else {}
        )
        for (tenant_id, event_type), (total, billable) in sorted(unpriced.items(), key=str):
            n = total - billable
            found.append(
                Detected(
                    category="unpriced",
                    tenant_id=tenant_id,
                    subject=event_type,
                    quantity=Decimal(n),
                    unit="events",
                    amount=cost_share(costs, tenant_id, [event_type], n),
                    currency=scope.operator_currency,
                    basis="cost",
                    evidence={
                        "events": total,
                        "priced_events": billable,
                        "unpriced_events": n,
                        "rate_card_version": f"{version.rate_card.code} v{version.number}",
                        "sample_event_ids": samples.get((tenant_id, event_type), []),
                    },
                )
            )
    return found


# --- rollups against raw events ------------------------------------------------------------


def _hour_ceil(moment: datetime) -> datetime:
    """The first whole UTC hour at or after ``moment``."""
    floor = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


def _hour_counts(
    window: BillingPeriod, tenant_ids: list[UUID]
) -> tuple[dict[tuple[UUID, Any], int], dict[tuple[UUID, Any], int], set[tuple[UUID, Any]]]:
    """Per (tenant, UTC hour): raw events, events the usage rollup counted, and the hours
    to leave out: still queued for a rollup, or purged by retention (their raw events are
    gone by design, and the rollups are the record)."""
    span = Q(tenant_id__in=tenant_ids, hour__gte=window.start, hour__lt=window.end)
    pending = set(RollupPending.objects.filter(span).values_list("tenant_id", "hour"))
    pending |= purged_hours(tenant_ids=tenant_ids, start=window.start, end=window.end)
    # The raw events of exactly the rollup hours in ``span``: with a half-hour offset the
    # window's edges fall inside an hour, which belongs to the side where it starts.
    events = Event.objects.filter(
        tenant_id__in=tenant_ids,
        timestamp__gte=_hour_ceil(window.start),
        timestamp__lt=_hour_ceil(window.end),
    )
    raw = {
        (r["tenant_id"], r["h"]): int(r["n"])
        for r in events.values("tenant_id", h=TruncHour("timestamp", tzinfo=UTC))
        .annotate(n=Count("*"))
        .order_by()
    }
    rolled = {
        (r["tenant_id"], r["hour"]): int(r["n"] or 0)
        for r in UsageRollup.objects.filter(span)
        .values("tenant_id", "hour")
        .annotate(n=Sum("events"))
        .order_by()
    }
    return raw, rolled, pending


def rollup_mismatch(*, scope: ScanScope) -> list[Detected]:
    """Tenant-hours whose usage rollup counts other events than the raw store holds (hours
    still queued for a rollup are in flight, not wrong, and hours whose raw events retention
    purged have nothing to compare with: both are left out)."""
    costs = cost_by_type(scope)
    found = []
    for window, tenant_ids in scope.by_window().items():
        raw, rolled, pending = _hour_counts(window, tenant_ids)
        off: dict[UUID, list[tuple[Any, int, int]]] = defaultdict(list)
        for key in sorted(set(raw) | set(rolled), key=lambda k: (str(k[0]), k[1])):
            if key in pending or raw.get(key, 0) == rolled.get(key, 0):
                continue
            off[key[0]].append((key[1], raw.get(key, 0), rolled.get(key, 0)))
        for tenant_id, hours in off.items():
            missing = sum(r - u for _, r, u in hours)
            types = sorted({t for (tenant, t) in costs if tenant == tenant_id})
            found.append(
                Detected(
                    category="quantity_mismatch",
                    tenant_id=tenant_id,
                    subject="rollup",
                    quantity=Decimal(missing),
                    unit="events",
                    amount=cost_share(costs, tenant_id, types, abs(missing))
                    * (1 if missing >= 0 else -1),
                    currency=scope.operator_currency,
                    basis="cost",
                    evidence={
                        "raw_events": sum(r for _, r, _ in hours),
                        "rolled_up_events": sum(u for _, _, u in hours),
                        "hours": [
                            {"hour": h.isoformat(), "raw": r, "rolled_up": u}
                            for h, r, u in hours[:SAMPLE_SIZE]
                        ],
                    },
                )
            )
    return found


# --- uncosted -------------------------------------------------------------------------------

_COST_KEYS = ("endpoint", "service", "provider", "model")


def _dimension_q(key: str, value: str) -> Q:
    """A rollup's dimension value as a filter on raw events, where '' stands for none."""
    if value:
        return Q(**{key: value})
    return Q(**{f"{key}__isnull": True}) | Q(**{key: ""})


def uncosted(*, scope: ScanScope) -> list[Detected]:
    """Calls of the UTC month that neither their own cost nor the price book priced, per
    tenant and event type. Their cost is unknown, so the amount at risk is 0."""
    period = scope.cost_period
    rows = (
        CostRollup.objects.filter(
            day__gte=period.start,
            day__lt=period.end,
            tenant_id__in=list(scope.months),
            source=CostRollup.Source.NONE,
        )
        .values("tenant_id", "event_type", *_COST_KEYS)
        .annotate(n=Sum("events"))
        .order_by()
    )
    counts: dict[tuple[UUID, str], int] = defaultdict(int)
    which = Q(pk__in=[])
    for row in rows:
        counts[(row["tenant_id"], row["event_type"])] += int(row["n"] or 0)
        one = Q(tenant_id=row["tenant_id"], type=row["event_type"])
        for key in _COST_KEYS:
            one &= _dimension_q(key, row[key])
        which |= one
    if not counts:
        return []
    samples = event_samples(
        which
        & Q(timestamp__gte=period.start_at(), timestamp__lt=period.end_at(), cost__isnull=True),
        ("tenant_id", "type"),
    )
    return [
        Detected(
            category="uncosted",
            tenant_id=tenant_id,
            subject=event_type,
            quantity=Decimal(n),
            unit="events",
            amount=ZERO,
            currency=scope.operator_currency,
            basis="cost",
            evidence={
                "uncosted_events": n,
                "sample_event_ids": samples.get((tenant_id, event_type), []),
            },
        )
        for (tenant_id, event_type), n in sorted(counts.items(), key=str)
    ]
