"""Read path for alerts: budgets with where they stand, their alerts, and the state of credit
grants. ``scope_tenant_id`` is the caller's tenant, None for the operator: a scoped caller sees
only budgets narrowed to its own tenant, and any other id reads as not found."""

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import (
    BooleanField,
    CharField,
    Count,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from apps.alerts.errors import AnomalyNotFound, BudgetNotFound
from apps.alerts.models import (
    Anomaly,
    Budget,
    BudgetAlert,
    BudgetPeriod,
    ForecastSnapshot,
    WebhookEndpoint,
)
from apps.billing.models import CreditDebit, CreditGrant
from apps.costs.services.rollup import PriceContext, cost_row
from apps.metering.models import Event, UsageRollup
from apps.metering.services.feeds import DAY_SUMS

BURN_WINDOW_DAYS = 30  # credits' burn rate: what the last 30 days of debits spent, per day
_PERCENT = Decimal("0.01")


def webhook_endpoint_list(*, scope_tenant_id: UUID | None) -> QuerySet[WebhookEndpoint]:
    """The webhook endpoints the caller may see: a tenant's own, or every one for the operator
    (None), oldest first."""
    rows = WebhookEndpoint.objects.select_related("tenant")
    if scope_tenant_id is not None:
        rows = rows.filter(tenant_id=scope_tenant_id)
    return rows.order_by("created_at", "id")


def budget_list(
    *, scope_tenant_id: UUID | None, tenant_id: UUID | None = None, active: bool | None = None
) -> QuerySet[Budget]:
    """Budgets the caller may see, by name, optionally of one tenant or activity."""
    rows = Budget.objects.select_related("tenant", "cost_center", "meter")
    if scope_tenant_id is not None:
        rows = rows.filter(tenant_id=scope_tenant_id)
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    if active is not None:
        rows = rows.filter(active=active)
    return rows.order_by("name", "created_at")


def budget_get(*, budget_id: Any, scope_tenant_id: UUID | None) -> Budget:
    """One budget; a foreign, unknown or malformed id raises ``BudgetNotFound``."""
    try:
        found = budget_list(scope_tenant_id=scope_tenant_id).filter(id=budget_id).first()
    except (ValueError, ValidationError):
        found = None
    if found is None:
        raise BudgetNotFound(f"budget {budget_id} not found", field="id")
    return found


def budget_periods_latest(*, budget_ids: list[UUID]) -> dict[UUID, BudgetPeriod]:
    """Each budget's most recent evaluated period, in one query."""
    latest: dict[UUID, BudgetPeriod] = {}
    rows = BudgetPeriod.objects.filter(budget_id__in=budget_ids).order_by(
        "budget_id", "-period_start"
    )
    for row in rows:
        latest.setdefault(row.budget_id, row)
    return latest


def budget_alert_list(*, budget: Budget) -> QuerySet[BudgetAlert]:
    """A budget's alerts, newest first (the caller got ``budget`` through ``budget_get``)."""
    return BudgetAlert.objects.filter(budget=budget).order_by("-fired_at", "-threshold")


@dataclass(frozen=True)
class GrantStatus:
    """Where one credit grant stands: how much is spent, and when it runs out at the pace of
    the last 30 days (None: nothing spent in them)."""

    grant: CreditGrant
    consumed_percent: Decimal
    remaining: Decimal
    burn_per_day: Decimal
    projected_depletion_on: date | None


def depletion_date(*, remaining: Decimal, burn_per_day: Decimal, today: date) -> date | None:
    """The day the balance reaches zero at ``burn_per_day``: today when it already has, None
    with no burn; otherwise today plus the whole days the remainder lasts, rounded up."""
    if remaining <= 0:
        return today
    if burn_per_day <= 0:
        return None
    return today + timedelta(days=math.ceil(remaining / burn_per_day))


def _burn(grant_ids: list[UUID], as_of: datetime) -> dict[UUID, Decimal]:
    since = as_of - timedelta(days=BURN_WINDOW_DAYS)
    rows = (
        CreditDebit.objects.filter(
            grant_id__in=grant_ids, created_at__gte=since, created_at__lt=as_of
        )
        .values("grant_id")
        .annotate(
            debits=Sum("amount", filter=Q(kind=CreditDebit.Kind.DEBIT)),
            refunds=Sum("amount", filter=Q(kind=CreditDebit.Kind.REFUND)),
        )
        .order_by()
    )
    return {r["grant_id"]: (r["debits"] or Decimal(0)) - (r["refunds"] or Decimal(0)) for r in rows}


def grant_statuses(*, grants: list[CreditGrant], as_of: datetime) -> list[GrantStatus]:
    """The status of each of ``grants`` as of ``as_of`` (one query for the burn rates)."""
    burned = _burn([g.id for g in grants], as_of)
    out = []
    for grant in grants:
        consumed = grant.amount - grant.remaining_amount
        percent = (consumed * 100 / grant.amount).quantize(_PERCENT, rounding=ROUND_HALF_UP)
        per_day = burned.get(grant.id, Decimal(0)) / BURN_WINDOW_DAYS
        out.append(
            GrantStatus(
                grant=grant,
                consumed_percent=percent,
                remaining=grant.remaining_amount,
                burn_per_day=per_day,
                projected_depletion_on=depletion_date(
                    remaining=grant.remaining_amount, burn_per_day=per_day, today=as_of.date()
                ),
            )
        )
    return out


def usable_grants(*, as_of: datetime) -> QuerySet[CreditGrant]:
    """Grants in effect and not expired at ``as_of`` (with an amount to measure against)."""
    return CreditGrant.objects.filter(effective_at__lte=as_of, amount__gt=0).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=as_of)
    )


def grants_consumed_past(*, percent: int, as_of: datetime) -> QuerySet[CreditGrant]:
    """Usable grants at least ``percent`` % consumed: remaining <= amount x (1 - p/100)."""
    left = Decimal(100 - percent) / 100
    return usable_grants(as_of=as_of).filter(remaining_amount__lte=F("amount") * left)


def credit_status(*, tenant_id: UUID, as_of: datetime | None = None) -> list[GrantStatus]:
    """Each usable grant of the tenant: % consumed, remaining, projected depletion date."""
    as_of = as_of or timezone.now()
    grants = list(usable_grants(as_of=as_of).filter(tenant_id=tenant_id).order_by("effective_at"))
    return grant_statuses(grants=grants, as_of=as_of)


# --- anomalies and forecasts ---------------------------------------------------------------
# Operator-only reads (what calls cost us, the operator's forecasts): no tenant-bound caller
# reaches them, so they take a tenant filter, not a caller's scope.

# The grain anomaly detection reads from the usage rollups: what prices a row (the pricing of
# ``apps.costs.services.rollup.cost_row``), what names a series, what a cause may be.
ANOMALY_GRAIN = (
    "tenant_id",
    "hour",
    "feature",
    "endpoint",
    "workflow",
    "environment",
    "provider",
    "model",
    "service",
    "external",
    "cache_hit",
    "cost_currency",
)
# The usage rollup's daily sums, as pricing reads them; errors are not priced (the hourly
# read sets them to 0).
_PRICED_SUMS = tuple(name for name in DAY_SUMS if name != "errors")
_TOKEN_SUMS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
CAUSE_DIMENSIONS = ("model", "provider", "workflow", "environment")
# Where a deployment tag may sit in an event's properties, first found wins (OpenTelemetry's
# ``service.version`` and ``deployment.id`` too).
DEPLOYMENT_KEYS = ("deployment", "deployment.id", "service.version", "version", "release")
_DZERO = Decimal(0)
_MAPE_PLACES = Decimal("0.01")


@dataclass
class Tally:
    """The sums of a group of calls that the anomaly figures are made of."""

    calls: int = 0
    cost: Decimal = _DZERO  # operator currency, priced like the cost rollups
    tokens: int = 0  # input + output
    llm_calls: int = 0  # calls with a model
    retries: int = 0
    traced_calls: int = 0
    root_calls: int = 0

    def add(self, other: "Tally") -> None:
        for name in _TALLY_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def measure(self, name: str) -> Decimal:
        return Decimal(getattr(self, name))


_TALLY_FIELDS = ("calls", "cost", "tokens", "llm_calls", "retries", "traced_calls", "root_calls")


@dataclass(frozen=True)
class UsageRow:
    """One priced group of a tenant's hour: the dimensions a series or a cause is made of."""

    hour: datetime
    feature: str
    endpoint: str
    dims: dict[str, str]  # CAUSE_DIMENSIONS
    tally: Tally


def _tally_priced(values: dict[str, Any], day: date, prices: PriceContext) -> Tally:
    row = {
        **values,
        "day": day,
        "event_type": "",
        "team": "",
        "wasted": False,
        "errors": 0,
        **{name: values[f"s_{name}"] or 0 for name in _PRICED_SUMS},
    }
    for name in ("provider", "model", "endpoint", "service", "cost_currency", *CAUSE_DIMENSIONS):
        row[name] = row.get(name) or ""
    for name in ("feature", "tenant_id"):
        row.setdefault(name, "" if name == "feature" else None)
    row["external"], row["cache_hit"] = bool(row["external"]), bool(row["cache_hit"])
    calls = int(row["events"])
    return Tally(
        calls=calls,
        cost=cost_row(row, prices).cost,
        tokens=int(row["input_tokens"]) + int(row["output_tokens"]),
        llm_calls=calls if row["model"] else 0,
        retries=int(row["retries"]),
        traced_calls=int(row["traced_calls"]),
        root_calls=int(row["root_calls"]),
    )


def anomaly_usage_rows(
    *, tenant_ids: list[UUID] | None, hours: Iterable[datetime], prices: PriceContext
) -> dict[UUID | None, list[UsageRow]]:
    """The priced hourly usage of ``tenant_ids`` in ``hours``, per tenant, or with None every
    tenant's together (under the key None): one grouped query of the usage rollups, each
    group priced by the cost rollups' own pricing."""
    rows = UsageRollup.objects.filter(hour__in=sorted(set(hours)))
    grain: tuple[str, ...] = ANOMALY_GRAIN
    if tenant_ids is None:
        grain = tuple(g for g in ANOMALY_GRAIN if g != "tenant_id")
    else:
        rows = rows.filter(tenant_id__in=tenant_ids)
    grouped = (
        rows.values(*grain).annotate(**{f"s_{name}": Sum(name) for name in _PRICED_SUMS}).order_by()
    )
    out: dict[UUID | None, list[UsageRow]] = defaultdict(list)
    for values in grouped:
        hour = values["hour"].astimezone(UTC)
        out[values.get("tenant_id")].append(
            UsageRow(
                hour,
                values["feature"],
                values["endpoint"],
                {d: values[d] for d in CAUSE_DIMENSIONS},
                _tally_priced(values, hour.date(), prices),
            )
        )
    return out


def anomaly_deployment_tallies(
    *,
    tenant_id: UUID,
    scope: str,
    scope_value: str,
    hour: datetime,
    before: timedelta,
    prices: PriceContext,
) -> tuple[dict[str, Tally], dict[str, Tally]]:
    """The calls of one series per deployment tag ('' for none) in ``hour`` and in the
    ``before`` leading up to it, from raw events: an audit-like read of one series, only for
    a flagged one, grouped in the database."""
    events = Event.objects.filter(
        tenant_id=tenant_id, timestamp__gte=hour - before, timestamp__lt=hour + timedelta(hours=1)
    )
    if scope in ("feature", "endpoint"):
        events = events.filter(**{scope: scope_value})
    tag = Coalesce(
        *(NullIf(KT(f"properties__{key}"), Value("")) for key in DEPLOYMENT_KEYS),
        Value(""),
        output_field=CharField(),
    )
    retried, root = Q(attempt__gt=1), Q(trace_id__isnull=False, parent_span_id__isnull=True)
    grouped = (
        events.annotate(
            tag=tag,
            now=ExpressionWrapper(Q(timestamp__gte=hour), output_field=BooleanField()),
        )
        .values(
            "now",
            "tag",
            "provider",
            "model",
            "endpoint",
            "service",
            "external",
            "cache_hit",
            "cost_currency",
        )
        .annotate(
            s_events=Count("event_id"),
            **{f"s_{n}": Sum(n) for n in _TOKEN_SUMS},
            s_credits=Sum("credits"),
            s_cost=Sum("cost"),
            s_latency_ms_sum=Sum("latency_ms"),
            s_retries=Count("event_id", filter=retried),
            s_traced_calls=Count("trace_id"),
            s_root_calls=Count("event_id", filter=root),
        )
        .order_by()
    )
    now: dict[str, Tally] = defaultdict(Tally)
    earlier: dict[str, Tally] = defaultdict(Tally)
    for values in grouped:
        bucket = now if values["now"] else earlier
        bucket[str(values["tag"] or "")].add(_tally_priced(values, hour.date(), prices))
    return dict(now), dict(earlier)


def anomaly_list(
    *,
    status: str | None = None,
    kind: str | None = None,
    tenant_id: UUID | None = None,
    since: datetime | None = None,
) -> QuerySet[Anomaly]:
    """Anomalies, newest hour first, optionally by status, kind, tenant and first hour."""
    rows = Anomaly.objects.select_related("tenant")
    if status:
        rows = rows.filter(status=status)
    if kind:
        rows = rows.filter(kind=kind)
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    if since is not None:
        rows = rows.filter(hour__gte=since)
    return rows.order_by("-hour", "kind", "scope", "scope_value")


def anomaly_get(*, anomaly_id: Any) -> Anomaly:
    """One anomaly; an unknown or malformed id raises ``AnomalyNotFound``."""
    try:
        return Anomaly.objects.select_related("tenant").get(id=anomaly_id)
    except (Anomaly.DoesNotExist, ValidationError, ValueError) as exc:
        raise AnomalyNotFound(f"anomaly {anomaly_id!s} does not exist", field="id") from exc


def forecast_latest(
    *, period_start: date, scope: str | None = None, measure: str | None = None
) -> QuerySet[ForecastSnapshot]:
    """The latest snapshot of each scope and measure of the month starting ``period_start``."""
    rows = ForecastSnapshot.objects.filter(period_start=period_start)
    if scope:
        rows = rows.filter(scope=scope)
    if measure:
        rows = rows.filter(measure=measure)
    newest = (
        ForecastSnapshot.objects.filter(
            period_start=OuterRef("period_start"),
            scope=OuterRef("scope"),
            scope_key=OuterRef("scope_key"),
            measure=OuterRef("measure"),
        )
        .order_by("-made_on")
        .values("made_on")[:1]
    )
    return rows.filter(made_on=Subquery(newest)).order_by("measure", "scope", "scope_key")


def _mape(errors: list[Decimal]) -> Decimal | None:
    """The mean of the absolute percentage errors, in percent to 2 places."""
    if not errors:
        return None
    mean = sum(errors, _DZERO) / len(errors) * 100
    return mean.quantize(_MAPE_PLACES, rounding=ROUND_HALF_UP)


def forecast_accuracy(*, period_start: date) -> dict[str, Any]:
    """MAPE of the cost forecasts per cost center over the month's snapshots that have an
    actual: the mean of |forecast - actual| / actual (snapshots with an actual of 0 are left
    out and counted), and over all cost centers' snapshots together."""
    rows = ForecastSnapshot.objects.filter(
        period_start=period_start,
        scope=ForecastSnapshot.Scope.COST_CENTER,
        measure=ForecastSnapshot.Measure.COST,
        actual__isnull=False,
    ).values_list("scope_key", "forecast", "actual")
    errors: dict[str, list[Decimal]] = defaultdict(list)
    excluded: dict[str, int] = defaultdict(int)
    for key, forecast, actual in rows:
        if actual is None or actual == 0:
            excluded[key] += 1
            errors.setdefault(key, [])
            continue
        errors[key].append(abs(forecast - actual) / actual)
    centers = [
        {
            "cost_center": key,
            "snapshots": len(values),
            "excluded_zero_actual": excluded[key],
            "mape_pct": _mape(values),
        }
        for key, values in sorted(errors.items())
    ]
    pooled = [e for values in errors.values() for e in values]
    return {
        "cost_centers": centers,
        "overall": {
            "snapshots": len(pooled),
            "excluded_zero_actual": sum(excluded.values()),
            "mape_pct": _mape(pooled),
        },
    }
