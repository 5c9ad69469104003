"""Read path for assurance: findings, and the month's reconciliation report.

Findings and reports are the operator's (they compare tenants' bills with what calls cost), so
these reads are operator-wide; ``tenant_id`` narrows them to one tenant.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import QuerySet, Sum
from django.utils import timezone

from apps.assurance.detectors.billing import invoice_check
from apps.assurance.detectors.usage import usage_check
from apps.assurance.errors import FindingNotFound, LeakageInvalid
from apps.assurance.models import Finding
from apps.assurance.scope import ScanScope, scan_scope
from apps.core.money import quantize
from apps.core.periods import PERIOD_YEARS, PERIOD_YEARS_TEXT
from apps.metering.models import IngestBatch, IngestTally
from apps.tenants.models import ApiKey, Tenant

ZERO = Decimal(0)
AT_RISK = (Finding.Status.OPEN, Finding.Status.ACKNOWLEDGED)


def leakage_period_parse(text: str | None, *, name: str = "period") -> date:
    """``YYYY-MM`` as the month's first day."""
    if not text:
        raise LeakageInvalid(f"{name}: required, as YYYY-MM", field=name)
    try:
        if len(text) != 7 or text[4] != "-":
            raise ValueError(text)
        month = date(int(text[:4]), int(text[5:]), 1)
    except ValueError as exc:
        raise LeakageInvalid(f"{name}: {text!r} is not a month as YYYY-MM", field=name) from exc
    if month.year not in PERIOD_YEARS:
        raise LeakageInvalid(
            f"{name}: {text!r} is out of range ({PERIOD_YEARS_TEXT})",
            field=name,
        )
    return month


def leakage_tenant_get(*, external_id: str) -> Tenant:
    tenant = Tenant.objects.filter(external_id=external_id).first()
    if tenant is None:
        raise LeakageInvalid(f"tenant: no tenant {external_id!r}", field="tenant")
    return tenant


def finding_list(
    *,
    period_start: date | None = None,
    status: str | None = None,
    category: str | None = None,
    tenant_id: UUID | None = None,
) -> QuerySet[Finding]:
    """Findings, newest month first, filtered by what is given."""
    for name, value, allowed in (
        ("status", status, Finding.Status.values),
        ("category", category, Finding.Category.values),
    ):
        if value is not None and value not in allowed:
            raise LeakageInvalid(
                f"{name}: {value!r} is not one of {', '.join(allowed)}", field=name
            )
    rows = Finding.objects.select_related("tenant")
    if period_start is not None:
        rows = rows.filter(period_start=period_start)
    if status is not None:
        rows = rows.filter(status=status)
    if category is not None:
        rows = rows.filter(category=category)
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    return rows.order_by("-period_start", "tenant__external_id", "category", "subject")


def finding_get(*, finding_id: UUID | str) -> Finding:
    try:
        return Finding.objects.select_related("tenant").get(id=finding_id)
    except (Finding.DoesNotExist, ValueError, ValidationError) as exc:
        raise FindingNotFound(f"finding {finding_id} not found", field="id") from exc


# --- the reconciliation report ----------------------------------------------------------------


@dataclass
class TenantLine:
    tenant: Tenant
    currency: str
    events: dict[str, int] = field(default_factory=dict)
    money: dict[str, Decimal] = field(default_factory=dict)

    def accuracy(self) -> Decimal | None:
        return accuracy_pct(self.money["billed"], self.money["billable"])


def accuracy_pct(billed: Decimal, billable: Decimal) -> Decimal | None:
    """Billed over billable, in percent to 2 places; None when nothing was billable."""
    if not billable:
        return None
    return (billed * 100 / billable).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _intake(scope: ScanScope) -> tuple[dict[UUID, int], dict[UUID | None, dict[str, int]]]:
    """Events accepted per tenant (by event time, in its month window), and per tenant (None:
    sent with an operator-wide key) what ingest batches received in the UTC month suppressed."""
    received: dict[UUID, int] = {}
    for window, tenant_ids in scope.by_window().items():
        rows = (
            IngestTally.objects.filter(
                tenant_id__in=tenant_ids, hour__gte=window.start, hour__lt=window.end
            )
            .values("tenant_id")
            .annotate(n=Sum("accepted"))
            .order_by()
        )
        received.update({r["tenant_id"]: int(r["n"] or 0) for r in rows})
    period = scope.cost_period
    batches = (
        IngestBatch.objects.filter(
            received_at__gte=period.start_at(), received_at__lt=period.end_at()
        )
        .values("api_key_prefix")
        .annotate(d=Sum("duplicates"), c=Sum("conflicts"), r=Sum("rejected"))
        .order_by()
    )
    owners = dict(ApiKey.objects.exclude(tenant=None).values_list("prefix", "tenant_id"))
    suppressed: dict[UUID | None, dict[str, int]] = defaultdict(
        lambda: {"duplicates": 0, "conflicts": 0, "rejected": 0}
    )
    for row in batches:
        counts = suppressed[owners.get(row["api_key_prefix"])]
        counts["duplicates"] += int(row["d"] or 0)
        counts["conflicts"] += int(row["c"] or 0)
        counts["rejected"] += int(row["r"] or 0)
    return received, suppressed


def _at_risk(month: date, tenant_ids: list[UUID]) -> dict[tuple[UUID, str], Decimal]:
    rows = (
        Finding.objects.filter(period_start=month, status__in=AT_RISK, tenant_id__in=tenant_ids)
        .values("tenant_id", "basis")
        .annotate(total=Sum("amount_at_risk"))
        .order_by()
    )
    return {(r["tenant_id"], r["basis"]): r["total"] for r in rows}


@dataclass
class _ReportBase:
    """What the report costs to compute (everything but the findings' amounts at risk)."""

    month: date
    operator_currency: str
    lines: list[TenantLine]
    unattributed: dict[str, int] | None
    computed_at: datetime


def _report_base(period_start: date, tenant_id: UUID | None) -> _ReportBase:
    scope = scan_scope(month=period_start, tenant_ids=None if tenant_id is None else [tenant_id])
    usage = usage_check(scope=scope, samples=False)
    money = invoice_check(scope=scope).money
    received, suppressed = _intake(scope)
    lines = []
    for tid, tm in scope.months.items():
        kept = suppressed.get(tid, {"duplicates": 0, "conflicts": 0, "rejected": 0})
        if not (received.get(tid) or usage.events.get(tid) or tid in money or any(kept.values())):
            continue
        bill = money.get(tid)
        line = TenantLine(tm.tenant, bill.currency if bill else tm.tenant.currency)
        line.events = {
            "received": received.get(tid, 0),
            "stored": usage.events.get(tid, 0),
            **kept,
            "billable": usage.billable.get(tid, 0),
        }
        line.money = {
            "billable": bill.billable if bill else ZERO,
            "billed": bill.billed if bill else ZERO,
            "credited": bill.credited if bill else ZERO,
        }
        lines.append(line)
    unattributed = suppressed.get(None) if tenant_id is None else None
    return _ReportBase(scope.month, scope.operator_currency, lines, unattributed, timezone.now())


def report_generation_key(period_start: date) -> str:
    """The cache key whose value changes each time a scan of the month commits: reports
    cached before it are never read again."""
    return f"leakage-report-generation:{period_start:%Y-%m}"


def leakage_report(*, period_start: date, tenant_id: UUID | None = None) -> dict[str, Any]:
    """The month's reconciliation per tenant and in total: events (received, suppressed,
    billable), money in each tenant's currency (billable at list now, billed, credited, at
    risk by the open findings), and the usage-vs-billing accuracy (billed / billable).

    Everything but the amounts at risk is cached for ``PERCALL_LEAKAGE_REPORT_CACHE_SECONDS``
    (and until the month's next scan), since it reprices the month's invoices; the answer's
    ``computed_at`` says as of when. The amounts at risk are read live, so acknowledging or
    resolving a finding shows at once."""
    generation = cache.get(report_generation_key(period_start), 0)
    key = f"leakage-report:{period_start:%Y-%m}:{tenant_id or 'all'}:{generation}"
    base: _ReportBase | None = cache.get(key)
    if base is None:
        base = _report_base(period_start, tenant_id)
        cache.set(key, base, settings.PERCALL_LEAKAGE_REPORT_CACHE_SECONDS)
    risk = _at_risk(period_start, [line.tenant.id for line in base.lines])
    for line in base.lines:
        tid = line.tenant.id
        line.money["at_risk_list_price"] = risk.get((tid, Finding.Basis.LIST_PRICE), ZERO)
        line.money["at_risk_cost"] = risk.get((tid, Finding.Basis.COST), ZERO)
    return _report_dict(base)


def _report_dict(base: _ReportBase) -> dict[str, Any]:
    lines, unattributed = base.lines, base.unattributed
    events: dict[str, int] = defaultdict(int)
    for line in lines:
        for name, value in line.events.items():
            events[name] += value
    for name, value in (unattributed or {}).items():
        events[name] += value
    by_currency: dict[str, dict[str, Decimal]] = {}
    at_risk_cost = ZERO
    for line in lines:
        sums = by_currency.setdefault(
            line.currency, {"billable": ZERO, "billed": ZERO, "credited": ZERO, "at_risk": ZERO}
        )
        for name in ("billable", "billed", "credited"):
            sums[name] += line.money[name]
        sums["at_risk"] += line.money["at_risk_list_price"]
        at_risk_cost += line.money["at_risk_cost"]
    currencies = [
        {"currency": c, **{f"{k}_amount": _money(v, c) for k, v in sums.items()},
         "accuracy_pct": _pct(accuracy_pct(sums["billed"], sums["billable"]))}
        for c, sums in sorted(by_currency.items())
    ]  # fmt: skip
    return {
        "period": f"{base.month:%Y-%m}",
        "operator_currency": base.operator_currency,
        "computed_at": base.computed_at.isoformat(),
        "tenants": [_line_dict(line) for line in lines],
        "total": {
            "events": dict(events),
            "unattributed_intake": unattributed or {"duplicates": 0, "conflicts": 0, "rejected": 0},
            "by_currency": currencies,
            "at_risk_cost": _exact(at_risk_cost),
            "accuracy_pct": currencies[0]["accuracy_pct"] if len(currencies) == 1 else None,
        },
    }


def _pct(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _money(amount: Decimal, currency: str) -> str:
    return str(quantize(amount, currency))


def _exact(amount: Decimal) -> str:
    """A cost at full precision, without trailing zeros."""
    return format(Decimal(amount).normalize(), "f")


def _line_dict(line: TenantLine) -> dict[str, Any]:
    money, currency = line.money, line.currency
    return {
        "tenant": line.tenant.external_id,
        "currency": currency,
        "events": line.events,
        "billable_amount": _money(money["billable"], currency),
        "billed_amount": _money(money["billed"], currency),
        "credited_amount": _money(money["credited"], currency),
        "at_risk_list_price": _money(money["at_risk_list_price"], currency),
        "at_risk_cost": _exact(money["at_risk_cost"]),
        "accuracy_pct": _pct(line.accuracy()),
    }
