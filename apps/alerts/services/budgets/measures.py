"""Measuring budgets, set-based: one grouped query per measure kind and period for every
budget of that kind, then each budget picks its own rows in memory.

- cost: the daily cost rollups (operator currency), by tenant, feature, workflow, endpoint or
  cost center (mapped as chargeback maps them: team code, then endpoint, feature, service
  rules). Cost rollups are per UTC day, so cost periods are UTC dates.
- billed amount: the tenant's subscription invoices of periods starting in the budget period
  (finalized, or a draft being refreshed), or the preview of its running period, before
  credits and tax, less the pre-tax part of credit notes on them. Invoices have no daily
  breakdown: the forecast is a run rate.
- usage: units of a count or sum meter from the hourly meter rollups, by tenant-local day.
- credit consumption: credits debited from the tenant's grants (of the budget's currency) less
  those given back, by tenant-local day of the movement.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

from django.db.models import Sum

from apps.alerts.models import Budget
from apps.alerts.services.budgets.periods import budget_zone, day_start
from apps.billing.models import CreditDebit, CreditNote, Invoice
from apps.billing.selectors import revenue_lines
from apps.billing.services.pricing import NoRateCardVersion
from apps.chargeback.services.mapping import CostCenterMap
from apps.costs.models import CostRollup
from apps.metering.models import Meter, MeterRollup
from apps.tenants.models import Tenant

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
TOP_DRIVERS = 5
_SHARE = Decimal("0.01")  # % of the figure
# The dimensions a cost budget's drivers are broken down by (its own scope's left out).
_COST_DRIVERS = ("tenant", "feature", "endpoint", "workflow", "model")
HISTORY_DAYS = 28  # four weekly seasons
_COST_GRAIN = ("tenant_id", "day", "feature", "workflow", "endpoint", "team", "service", "model")


@dataclass(frozen=True)
class Target:
    """One budget and the period it is evaluated for."""

    budget: Budget
    start: date
    end: date  # exclusive

    @property
    def zone(self) -> tzinfo:
        return budget_zone(self.budget)

    @property
    def key(self) -> "TargetKey":
        return (self.budget.id, self.start)


TargetKey = tuple[UUID, date]  # budget, period start


@dataclass
class Measured:
    """A budget's figure so far this period, per day, and by what drove it."""

    total: Decimal = ZERO
    daily: dict[date, Decimal] = field(default_factory=dict)
    by: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # dimension -> value -> sum
    daily_known: bool = True  # False: no daily breakdown (invoices)
    # Days before the period (cost only, up to HISTORY_DAYS): the forecast fits on them, so a
    # period's first days are projected from last month's shape, not from a day or two.
    history: dict[date, Decimal] = field(default_factory=dict)

    def add(self, day: date, amount: Decimal, **dims: str) -> None:
        self.total += amount
        self.daily[day] = self.daily.get(day, ZERO) + amount
        for name, value in dims.items():
            bucket = self.by.setdefault(name, {})
            bucket[value] = bucket.get(value, ZERO) + amount

    def drivers(self) -> list[dict[str, str]]:
        """Up to ``TOP_DRIVERS`` largest contributors per dimension, largest first."""
        out: list[tuple[Decimal, dict[str, str]]] = []
        if self.total <= 0:  # nothing spent (or all given back): nothing drove it
            return []
        for dimension, values in self.by.items():
            ranked = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_DRIVERS]
            for value, amount in ranked:
                if amount <= 0:
                    continue
                share = (amount * 100 / self.total).quantize(_SHARE, ROUND_HALF_UP)
                row = {
                    "dimension": dimension,
                    "value": value,
                    "amount": _plain(amount),
                    "share": str(share),
                }
                out.append((amount, row))
        out.sort(key=lambda item: (-item[0], item[1]["dimension"], item[1]["value"]))
        return [row for _, row in out]


def _plain(amount: Decimal) -> str:
    """A figure without trailing zeros or exponent ("10", "0.5"), the same on every database."""
    return f"{amount.normalize():f}"


def _by_period(targets: Iterable[Target]) -> dict[tuple[date, date], list[Target]]:
    groups: dict[tuple[date, date], list[Target]] = defaultdict(list)
    for target in targets:
        groups[(target.start, target.end)].append(target)
    return groups


def _tenant_filter(targets: list[Target]) -> set[UUID] | None:
    """The tenants to read when every budget is narrowed to one; None: all."""
    ids = {t.budget.tenant_id for t in targets}
    return None if None in ids else {i for i in ids if i is not None}


def _cost_matches(budget: Budget, row: dict[str, Any], centers: CostCenterMap) -> bool:
    if budget.tenant_id is not None and row["tenant_id"] != budget.tenant_id:
        return False
    if budget.scope == Budget.Scope.COST_CENTER:
        return bool(centers.cost_center_of(row) == budget.cost_center_id)
    if budget.scope in (Budget.Scope.FEATURE, Budget.Scope.WORKFLOW, Budget.Scope.ENDPOINT):
        return bool(row[budget.scope] == budget.scope_value)
    return True


def cost_measures(targets: list[Target]) -> dict[TargetKey, Measured]:
    """Cost budgets from the cost rollups: one query per distinct period."""
    out: dict[TargetKey, Measured] = {t.key: Measured() for t in targets}
    if not targets:
        return out
    centers = CostCenterMap.load()
    names = dict(Tenant.objects.values_list("id", "external_id"))
    for (start, end), group in _by_period(targets).items():
        rows = CostRollup.objects.filter(day__gte=start - timedelta(HISTORY_DAYS), day__lt=end)
        tenants = _tenant_filter(group)
        if tenants is not None:
            rows = rows.filter(tenant_id__in=tenants)
        grouped = rows.values(*_COST_GRAIN).annotate(sum_cost=Sum("cost")).order_by()
        for row in grouped:
            cost = Decimal(row["sum_cost"] or 0)
            if not cost:
                continue
            # An unnamed value (a call with no model) drives nothing worth naming.
            values = {
                "tenant": names.get(row["tenant_id"], str(row["tenant_id"])),
                **{d: row[d] for d in _COST_DRIVERS if d != "tenant" and row[d]},
            }
            for target in group:
                budget = target.budget
                if not _cost_matches(budget, row, centers):
                    continue
                measured = out[target.key]
                if row["day"] < start:
                    measured.history[row["day"]] = measured.history.get(row["day"], ZERO) + cost
                    continue
                skip = {budget.scope} | ({"tenant"} if budget.tenant_id else set())
                dims = {k: v for k, v in values.items() if k not in skip}
                measured.add(row["day"], cost, **dims)
    return out


def _pre_tax(amount: Decimal, tax_rate: Decimal) -> Decimal:
    return amount / (1 + tax_rate) if tax_rate else amount


def _credit_notes(targets: list[Target]) -> dict[TargetKey, Decimal]:
    """The pre-tax credit notes on each billed budget's invoices of its period."""
    spans: dict[UUID | None, list[Target]] = defaultdict(list)
    for target in targets:
        spans[target.budget.tenant_id].append(target)
    notes = (
        CreditNote.objects.filter(
            invoice__tenant_id__in=list(spans),
            invoice__kind=Invoice.Kind.SUBSCRIPTION,
        )
        .exclude(invoice__status=Invoice.Status.VOID)
        .values_list("invoice__tenant_id", "invoice__period_start", "invoice__tax_rate", "amount")
    )
    out: dict[TargetKey, Decimal] = defaultdict(lambda: ZERO)
    for tenant_id, began, tax_rate, amount in notes:
        for target in spans[tenant_id]:
            if target.start <= began.astimezone(target.zone).date() < target.end:
                out[target.key] += _pre_tax(amount, tax_rate)
    return out


def billed_measures(targets: list[Target], *, as_of: datetime) -> dict[TargetKey, Measured]:
    """Billed-amount budgets (one per tenant): invoices of the period, or its preview."""
    out: dict[TargetKey, Measured] = {}
    noted = _credit_notes(targets) if targets else {}
    for target in targets:
        budget = target.budget
        zone = target.zone
        measured = Measured(daily_known=False)
        try:
            lines = revenue_lines(
                start=datetime.combine(target.start, time(), tzinfo=zone),
                end=datetime.combine(target.end, time(), tzinfo=zone),
                tenant_id=budget.tenant_id,
                at=as_of,
            )
        except NoRateCardVersion:
            # The running period cannot be priced (billing reports it on its own run): this
            # budget keeps its last state rather than dropping to zero or stopping the rest.
            logger.warning("budget %s: the running period has no rate card version", budget.id)
            continue
        today = min(as_of.astimezone(zone).date(), target.end - timedelta(days=1))
        for line in lines:
            if line.currency == budget.currency:
                measured.add(today, line.amount, feature=line.feature or "(base fees)")
        credit = noted.get(target.key, ZERO)
        if credit:
            measured.add(today, -credit, feature="(credit notes)")
        out[target.key] = measured
    return out


def usage_measures(targets: list[Target]) -> dict[TargetKey, Measured]:
    """Usage budgets from the hourly meter rollups: one query for all of them."""
    out: dict[TargetKey, Measured] = {t.key: Measured() for t in targets}
    if not targets:
        return out
    starts = [day_start(t.start, t.zone) for t in targets]
    ends = [day_start(t.end, t.zone) for t in targets]
    rows = (
        MeterRollup.objects.filter(
            meter_id__in={t.budget.meter_id for t in targets},
            tenant_id__in={t.budget.tenant_id for t in targets},
            hour__gte=min(starts),
            hour__lt=max(ends),
        )
        .values("meter_id", "tenant_id", "hour", "group_key")
        .annotate(n=Sum("events"), s=Sum("sum"))
        .order_by()
    )
    by_key: dict[tuple[int, UUID], list[tuple[Target, datetime, datetime]]] = defaultdict(list)
    for target, start, end in zip(targets, starts, ends, strict=True):
        by_key[(target.budget.meter_id, target.budget.tenant_id)].append((target, start, end))  # type: ignore[index]
    for row in rows:
        for target, start, end in by_key.get((row["meter_id"], row["tenant_id"]), []):
            if not start <= row["hour"] < end:
                continue
            meter: Meter = target.budget.meter  # type: ignore[assignment]
            value = (
                Decimal(row["n"] or 0) if meter.aggregation == "count" else Decimal(row["s"] or 0)
            )
            day = row["hour"].astimezone(target.zone).date()
            dims = {"group": row["group_key"]} if meter.group_by else {}
            out[target.key].add(day, value, **dims)
    return out


def credit_measures(targets: list[Target]) -> dict[TargetKey, Measured]:
    """Credit-consumption budgets from the credit ledger: one query for all of them."""
    out: dict[TargetKey, Measured] = {t.key: Measured() for t in targets}
    if not targets:
        return out
    spans: dict[UUID | None, list[tuple[Target, datetime, datetime]]] = defaultdict(list)
    for t in targets:
        spans[t.budget.tenant_id].append((t, day_start(t.start, t.zone), day_start(t.end, t.zone)))
    every = [span for group in spans.values() for span in group]
    rows = CreditDebit.objects.filter(
        grant__tenant_id__in=list(spans),
        created_at__gte=min(s for _, s, _ in every),
        created_at__lt=max(e for _, _, e in every),
    ).values_list(
        "grant__tenant_id",
        "grant__currency",
        "grant_id",
        "grant__reason",
        "kind",
        "amount",
        "created_at",
    )
    for tenant_id, currency, grant_id, reason, kind, amount, at in rows:
        signed = amount if kind == CreditDebit.Kind.DEBIT else -amount
        for target, start, end in spans[tenant_id]:
            if currency == target.budget.currency and start <= at < end:
                day = at.astimezone(target.zone).date()
                out[target.key].add(day, signed, grant=reason or str(grant_id))
    return out


def measures_all(targets: list[Target], *, as_of: datetime) -> dict[TargetKey, Measured]:
    """Every target measured, by kind."""
    kinds: dict[str, list[Target]] = defaultdict(list)
    for target in targets:
        kinds[target.budget.measure].append(target)
    return {
        **cost_measures(kinds[Budget.Measure.COST]),
        **billed_measures(kinds[Budget.Measure.BILLED_AMOUNT], as_of=as_of),
        **usage_measures(kinds[Budget.Measure.USAGE]),
        **credit_measures(kinds[Budget.Measure.CREDIT_CONSUMPTION]),
    }
