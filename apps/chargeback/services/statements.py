"""Monthly chargeback statements: draft from the cost rollups, issue, correct.

``statements_run`` maps each day's cost to a cost center (``mapping``), allocates the shared
pools, and writes one draft per cost center with cost (and the Unallocated one, for cost no
rule maps), replacing the lines of an existing draft. Issued statements are left alone: a
correction is ``statement_correct``, a new draft that references the issued one.

Rounding: a statement's direct cost is its exact total rounded once (ROUND_HALF_UP), then
split over its lines by largest remainder on their exact amounts; each pool is split over
the cost centers the same way. So every line is rounded once, every total is the sum of its
lines, and every breakdown (by service, by day, the FOCUS rows) sums to it exactly.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.billing.services.numbering import counter_advance
from apps.catalog.services.price_book import price_book_versions_lock
from apps.chargeback.allocation import apportion
from apps.chargeback.errors import (
    ChargebackInvalid,
    StatementNotDraft,
    StatementNotFound,
    StatementNotIssued,
    StatementStale,
)
from apps.chargeback.models import SharedCostPool, Statement, StatementLine
from apps.chargeback.selectors import statement_get
from apps.chargeback.services.mapping import CostCenterMap
from apps.core.audit import audit_record
from apps.core.money import quantize
from apps.core.outbox import outbox_publish
from apps.core.periods import month_add
from apps.costs.selectors import (
    CostPeriod,
    cost_center_totals,
    cost_rows_for_chargeback,
    price_book_version_ids,
    prices_changed,
)
from apps.tenants.models import CostCenter

ZERO = Decimal(0)
UNALLOCATED = None  # the key of the Unallocated statement
_LINE_KEY = ("day", "service", "feature", "provider", "model")
TOP_DRIVERS = 5


@dataclass
class _Center:
    """What one cost center (or Unallocated) gets in a period, before rounding."""

    lines: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    calls: int = 0
    uncosted_calls: int = 0
    tokens: int = 0
    cost: Decimal = ZERO
    allocated: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StatementsReport:
    period: str
    drafted: list[str] = field(default_factory=list)  # cost center codes ('' = Unallocated)
    issued_unchanged: list[str] = field(default_factory=list)
    issued_differs: list[str] = field(default_factory=list)  # issued, and cost moved since
    removed: list[str] = field(default_factory=list)  # drafts left with no cost: deleted

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _direct(period: CostPeriod, mapping: CostCenterMap) -> dict[Any, _Center]:
    centers: dict[Any, _Center] = defaultdict(_Center)
    for row in cost_rows_for_chargeback(period=period):
        center = centers[mapping.cost_center_of(row)]
        key = tuple(row[k] for k in _LINE_KEY)
        line = center.lines.setdefault(
            key, {"calls": 0, "input_tokens": 0, "output_tokens": 0, "exact": ZERO}
        )
        line["calls"] += row["calls"]
        line["input_tokens"] += row["input_tokens"]
        line["output_tokens"] += row["output_tokens"]
        line["exact"] += row["cost"]
        center.calls += row["calls"]
        center.uncosted_calls += row["uncosted_calls"]
        center.tokens += row["input_tokens"] + row["output_tokens"]
        center.cost += row["cost"]
    return centers


def _pools(period: CostPeriod) -> list[SharedCostPool]:
    pools = SharedCostPool.objects.filter(active=True).prefetch_related("targets")
    return [
        p
        for p in pools.order_by("code")
        if (p.starts_on is None or p.starts_on <= period.start)
        and (p.ends_on is None or p.ends_on > period.start)
    ]


def _pool_weights(
    pool: SharedCostPool, centers: dict[Any, _Center], codes: dict[Any, str]
) -> list[tuple[Any, Decimal]]:
    """The cost centers sharing ``pool`` and their weights, in code order (the tie-break)."""
    by_code = {code: cid for cid, code in codes.items()}
    if pool.method == SharedCostPool.Method.FIXED:
        return sorted(
            ((by_code[c], Decimal(str(pct))) for c, pct in pool.shares.items() if c in by_code),
            key=lambda w: codes[w[0]],
        )
    targets = [t.id for t in pool.targets.all()]
    if not targets:
        targets = [
            cid
            for cid, center in centers.items()
            if cid is not None
            and (center.calls if pool.method == SharedCostPool.Method.EVEN else center.cost) > 0
        ]
    measure = {
        SharedCostPool.Method.EVEN: lambda c: Decimal(1),
        SharedCostPool.Method.REQUESTS: lambda c: Decimal(c.calls),
        SharedCostPool.Method.DIRECT_COST: lambda c: c.cost,
        SharedCostPool.Method.TOKENS: lambda c: Decimal(c.tokens),
    }[SharedCostPool.Method(pool.method)]
    weights = [(cid, measure(centers.get(cid) or _Center())) for cid in targets]
    return sorted(weights, key=lambda w: codes[w[0]])


def _allocate(period: CostPeriod, centers: dict[Any, _Center], currency: str) -> None:
    codes = dict(CostCenter.objects.values_list("id", "code"))
    for pool in _pools(period):
        amount = quantize(pool.amount, currency)
        weights = _pool_weights(pool, centers, codes)
        if not weights or (all(w == 0 for _, w in weights) and pool.method != "even"):
            # No one to share it with this month: shown, never lost.
            centers[UNALLOCATED].allocated.append(
                {"pool": pool, "amount": amount, "exact": amount, "weight": None}
            )
            continue
        parts = apportion(amount, weights, currency=currency)
        whole = sum((w for _, w in weights), ZERO)
        for cid, weight in weights:
            centers[cid].allocated.append(
                {
                    "pool": pool,
                    "amount": parts[cid],
                    "exact": amount * weight / whole if whole else parts[cid],
                    "weight": weight,
                }
            )


def _lines(center: _Center, currency: str) -> tuple[list[StatementLine], Decimal, Decimal]:
    direct_total = quantize(center.cost, currency)
    keys = sorted(center.lines, key=lambda k: tuple(str(v) for v in k))
    parts = (
        apportion(
            direct_total,
            [(k, max(center.lines[k]["exact"], ZERO)) for k in keys],
            currency=currency,
        )
        if keys
        else {}
    )
    out = []
    for key in keys:
        values = dict(zip(_LINE_KEY, key, strict=True))
        line = center.lines[key]
        label = " / ".join(v for v in (values["service"], values["feature"], values["model"]) if v)
        out.append(
            StatementLine(
                kind=StatementLine.Kind.DIRECT,
                description=label or "calls without a service",
                calls=line["calls"],
                input_tokens=line["input_tokens"],
                output_tokens=line["output_tokens"],
                exact_amount=line["exact"],
                amount=parts[key],
                **values,
            )
        )
    allocated_total = ZERO
    for item in center.allocated:
        pool = item["pool"]
        allocated_total += item["amount"]
        out.append(
            StatementLine(
                kind=StatementLine.Kind.ALLOCATED,
                pool=pool,
                method=pool.method,
                description=f"{pool.name} ({pool.method.replace('_', ' ')})",
                exact_amount=item["exact"],
                amount=item["amount"],
            )
        )
    for position, statement_line in enumerate(out, start=1):
        statement_line.position = position
    return out, direct_total, allocated_total


def _drivers(lines: Iterable[StatementLine], total: Decimal) -> list[dict[str, str]]:
    grouped: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: ZERO)
    for line in lines:
        if line.kind == StatementLine.Kind.DIRECT:
            grouped[(line.service, line.feature, line.model)] += line.amount
    top = sorted(grouped.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_DRIVERS]
    return [
        {
            "service": s,
            "feature": f,
            "model": m,
            "amount": str(amount),
            "share": str((amount / total * 100).quantize(Decimal("0.1"))) if total else "0",
        }
        for (s, f, m), amount in top
        if amount
    ]


def _write(
    statement: Statement, center: _Center, cost_center: CostCenter | None, currency: str
) -> None:
    lines, direct, allocated = _lines(center, currency)
    statement.currency = currency
    statement.direct_amount = direct
    statement.allocated_amount = allocated
    statement.total_amount = direct + allocated
    budget = cost_center.monthly_budget_amount if cost_center else None
    statement.budget_amount = budget
    statement.variance_amount = None if budget is None else budget - statement.total_amount
    statement.calls = center.calls
    statement.uncosted_calls = center.uncosted_calls
    statement.drivers = _drivers(lines, direct)
    statement.drafted_at = timezone.now()
    statement.full_clean()
    statement.save()
    statement.lines.all().delete()
    for line in lines:
        line.statement = statement
    StatementLine.objects.bulk_create(lines, batch_size=2000)


def period_centers(period: CostPeriod) -> dict[Any, _Center]:
    """What each cost center gets in ``period``: direct cost mapped, pools allocated."""
    currency = settings.PERCALL_OPERATOR_CURRENCY
    centers = _direct(period, CostCenterMap.load())
    _allocate(period, centers, currency)
    return centers


def period_allocations(period: CostPeriod) -> dict[Any, _Center]:
    """The pools' parts per cost center in ``period`` (exact and rounded), from cost totals by
    the mapped dimensions alone: what the metrics need, without the statement lines."""
    mapping = CostCenterMap.load()
    centers: dict[Any, _Center] = defaultdict(_Center)
    for row in cost_center_totals(period=period):
        center = centers[mapping.cost_center_of(row)]
        center.calls += row["calls"]
        center.tokens += row["input_tokens"] + row["output_tokens"]
        center.cost += row["cost"]
    _allocate(period, centers, settings.PERCALL_OPERATOR_CURRENCY)
    return centers


def _same(statement: Statement, center: _Center, currency: str) -> bool:
    _, direct, allocated = _lines(center, currency)
    return statement.direct_amount == direct and statement.allocated_amount == allocated


@transaction.atomic(durable=True)
def statements_run(*, period: CostPeriod) -> StatementsReport:
    """Draft (or refresh the drafts of) every cost center's statement for ``period`` (a UTC
    month)."""
    if not period.is_month:
        raise ChargebackInvalid(
            f"period: {period.label} is not a month; statements are monthly", field="period"
        )
    currency = settings.PERCALL_OPERATOR_CURRENCY
    # One run per month at a time (a task may run twice): the second waits on this counter
    # row's lock, then refreshes what the first wrote instead of racing it to a new draft.
    counter_advance(series=f"statements-run:{period.label}", count=0)
    centers = period_centers(period)
    report = StatementsReport(period=period.label)
    by_id = {c.id: c for c in CostCenter.objects.filter(id__in=[k for k in centers if k])}
    # Locked in id order, and only the statement rows (the default ordering joins the
    # nullable cost center, which FOR UPDATE refuses).
    existing = list(
        Statement.objects.select_for_update(of=("self",))
        .filter(period_start=period.start)
        .order_by("id")
    )
    drafts = {s.cost_center_id: s for s in existing if s.status == Statement.Status.DRAFT}
    issued = {}
    for s in sorted(
        (s for s in existing if s.status == Statement.Status.ISSUED), key=lambda s: s.number or ""
    ):
        issued[s.cost_center_id] = s  # the latest issued per cost center: the highest number
    for key in sorted(centers, key=lambda k: by_id[k].code if k else ""):
        center = centers[key]
        label = by_id[key].code if key else ""
        if key in issued and key not in drafts:
            same = _same(issued[key], center, currency)
            (report.issued_unchanged if same else report.issued_differs).append(label)
            continue
        statement = drafts.get(key) or Statement(
            cost_center=by_id.get(key) if key else None,
            period_start=period.start,
            period_end=period.end,
        )
        _write(statement, center, by_id.get(key) if key else None, currency)
        report.drafted.append(label)
    for key, draft in drafts.items():
        if key in centers:
            continue
        label = draft.cost_center.code if draft.cost_center else ""
        if draft.corrects_id:
            # A correction to nothing (the cost moved elsewhere): it must stay, at zero.
            _write(draft, _Center(), draft.cost_center, currency)
            report.drafted.append(label)
        else:
            # A draft whose cost moved elsewhere (a new rule, a re-costed day) would count
            # it twice.
            report.removed.append(label)
            draft.delete()
    for key, statement in issued.items():
        if key not in centers and key not in drafts:  # issued, and its cost is all gone
            label = statement.cost_center.code if statement.cost_center else ""
            same = _same(statement, _Center(), currency)
            (report.issued_unchanged if same else report.issued_differs).append(label)
    return report


def _statement_for_update(statement_id: UUID | str) -> Statement:
    """The statement's row, locked (only its own row: the cost center is nullable)."""
    found = statement_get(statement_id=statement_id)
    locked = (
        Statement.objects.select_for_update(of=("self",)).order_by().filter(id=found.id).first()
    )
    if locked is None:  # deleted since (a refreshed draft whose cost moved away)
        raise StatementNotFound(f"statement {statement_id} not found", field="id")
    return locked


@transaction.atomic(durable=True)
def statement_correct(*, statement_id: UUID | str, reason: str) -> Statement:
    """A new draft for the issued statement's cost center and month, from the cost as it is
    now, referencing the statement it corrects (which stays as issued)."""
    original = _statement_for_update(statement_id)
    if original.status != Statement.Status.ISSUED:
        raise StatementNotIssued(f"statement {original.id} is a draft: refresh it instead")
    if Statement.objects.filter(
        cost_center=original.cost_center,
        period_start=original.period_start,
        status=Statement.Status.DRAFT,
    ).exists():
        raise StatementNotDraft(
            "a draft for this cost center and month already exists: issue or refresh it"
        )
    period = CostPeriod(original.period_start, original.period_end)
    centers = period_centers(period)
    correction = Statement(
        cost_center=original.cost_center,
        period_start=original.period_start,
        period_end=original.period_end,
        corrects=original,
        correction_reason=reason[:500],
    )
    _write(
        correction,
        centers.get(original.cost_center_id) or _Center(),
        original.cost_center,
        settings.PERCALL_OPERATOR_CURRENCY,
    )
    audit_record(
        action="statement.correct",
        target_type="statement",
        target_id=correction.id,
        after={"corrects": original.number, "reason": correction.correction_reason,
               "total_amount": correction.total_amount},
    )  # fmt: skip
    return correction


@transaction.atomic(durable=True)
def statement_issue(*, statement_id: UUID | str, actor: Any | None) -> Statement:
    """Number and issue a draft; from then on it never changes. Locks the price-book versions
    that priced its month."""
    statement = _statement_for_update(statement_id)
    if statement.status != Statement.Status.DRAFT:
        raise StatementNotDraft(f"statement {statement.number} is issued and cannot change")
    period = CostPeriod(statement.period_start, statement.period_end)
    # Stale when the month's prices changed and are not re-costed yet, or when its cost as it
    # stands now no longer gives this draft's amounts (late usage costed since, whenever the
    # transaction that costed it began).
    current = period_centers(period).get(statement.cost_center_id) or _Center()
    if prices_changed(period=period) or not _same(
        statement, current, settings.PERCALL_OPERATOR_CURRENCY
    ):
        raise StatementStale(
            f"the cost of {period.label} changed since this draft was made (late usage or new "
            "prices): refresh the drafts (statements run) and review them before issuing",
            field="id",
        )
    month = statement.period_start.strftime("%Y-%m")
    (sequence,) = counter_advance(series=f"statement:{month}")
    statement.number = f"{settings.PERCALL_STATEMENT_NUMBER_PREFIX}-{month}-{sequence:04d}"
    statement.status = Statement.Status.ISSUED
    statement.issued_at = timezone.now()
    statement.issued_by = actor if getattr(actor, "pk", None) else None
    statement.full_clean()
    statement.save()
    price_book_versions_lock(
        version_ids=price_book_version_ids(period=period),
        through=statement.period_end - timedelta(days=1),
    )
    center = statement.cost_center
    audit_record(
        action="statement.issue",
        target_type="statement",
        target_id=statement.id,
        before={"status": Statement.Status.DRAFT},
        after={"status": statement.status, "number": statement.number,
               "cost_center": center.code if center else "", "period": period.label,
               "currency": statement.currency, "total_amount": statement.total_amount},
    )  # fmt: skip
    outbox_publish(
        topic="statement.issued",
        tenant_id=None,
        data={
            "statement": {
                "id": str(statement.id),
                "number": statement.number,
                "cost_center": center.code if center else "",
                "period": period.label,
                "currency": statement.currency,
                "total": str(quantize(statement.total_amount, statement.currency)),
                "corrects": str(statement.corrects_id) if statement.corrects_id else None,
            }
        },
    )
    return statement


def statement_period_last_closed(*, today: date | None = None) -> CostPeriod:
    """The UTC month before ``today``'s."""
    start = month_add(today or timezone.now().date(), 0)
    return CostPeriod(month_add(start, -1), start)
