"""Anomalies: hours of a tenant, or of one of its features or endpoints (or of a feature or
endpoint across every tenant), whose figures left their robust baseline
(``apps.alerts.baselines``), each with the dimension that moved most.

Figures of a series in an hour, by the definitions of ``apps.costs.metrics``: calls, cost per
call (the hourly usage rollups priced by ``apps.costs.services.rollup.cost_row``, the same
pricing as the cost rollups), amplification (calls in traces per root call), tokens per LLM
call and retries per call. An hour is flagged only upward, when the robust z-score is at
least 3.5 AND the figure is at least 1.5 times the baseline median AND the change matters in
absolute terms (``_RULES``), so that a tiny series or a noisy one does not page anyone.

Reads are set-based: one grouped query of the usage rollups per batch of tenants (and one
across every tenant), over only the hours judged and the hours they are compared with; raw
events are read only for a flagged tenant series (its hour and the 24 before), to find a
deployment tag. See docs/anomalies.md.
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.alerts.baselines import (
    Baseline,
    baseline_hours,
    baseline_of,
    needed_hours,
    robust_z,
    share_shift,
)
from apps.alerts.errors import AnomalyNotFound, AnomalyStatusInvalid
from apps.alerts.models import Anomaly
from apps.alerts.selectors import (
    CAUSE_DIMENSIONS,
    Tally,
    UsageRow,
    anomaly_deployment_tallies,
    anomaly_usage_rows,
)
from apps.core.outbox import outbox_publish
from apps.costs.metrics import per, ratio
from apps.costs.services.rollup import PriceContext
from apps.metering.models import UsageRollup

ZERO = Decimal(0)
JUDGED_HOURS = 3  # each run re-judges the last 3 complete hours: rollups of late events
TENANT_BATCH = 500  # tenants per grouped query (bounds memory, not queries per series)
Z_MIN = Decimal("3.5")
JUMP = Decimal("1.5")  # the figure at least 1.5 times the baseline median
MIN_SAMPLES = 3  # baseline hours with a value, for a ratio figure
SHARE = Decimal("1e-6")  # shares of a measure, as fractions
CAUSE_MIN_SHIFT = Decimal("0.1")  # a cause's share of the moved measure grew 10 points+
# A deployment tag changes with every release, so weeks-old hours always differ: it is
# compared with the 24 hours just before the anomaly instead, what changed right before it.
DEPLOYMENT_WINDOW = timedelta(hours=24)

SeriesKey = tuple[UUID | None, str, str]  # tenant (None: every tenant), scope, scope value
# Which dimension names a tie (one model serving one workflow moves both alike): the one a
# kind is most about, workflow for amplification (calls per run), else model first.
_CAUSE_ORDER: dict[str, tuple[str, ...]] = {
    Anomaly.Kind.AMPLIFICATION_JUMP: ("workflow", "model", "provider", "environment"),
}


FIGURES: dict[str, Callable[[Tally], Decimal | None]] = {
    "calls": lambda t: Decimal(t.calls),
    "cost_per_call": lambda t: per(t.cost, t.calls),
    "amplification": lambda t: ratio(t.traced_calls, t.root_calls),
    "tokens_per_request": lambda t: ratio(t.tokens, t.llm_calls),
    "retry_rate": lambda t: ratio(t.retries, t.calls),
}


@dataclass(frozen=True)
class _Rule:
    kind: str
    figure: str
    moved: str  # the Tally measure whose shares name the cause
    floor: Decimal  # the MAD floor, in the figure's units
    matters: Callable[[Tally, Decimal, Decimal, Decimal], bool]  # hour, value, median, med cost


# The minimum practical effects: below them a change is too small to page anyone about.
MIN_CALLS = 20  # calls (or LLM calls) in the hour, for a per-call figure
MIN_EXTRA_COST = Decimal("0.50")  # operator currency over the hour's usual cost
MIN_EXTRA_CALLS = 50  # calls over the usual hour
MIN_ROOT_CALLS = 10  # workflow runs in the hour, for amplification
MIN_RETRIES = 20
MIN_RETRY_POINTS = Decimal("0.05")  # 5 points more of the calls retried than usual

_RULES = (
    # Cost per call up 1.5x means cost grew 1.5x more than calls; the hour's cost must have
    # jumped too (not fewer cheap calls), by at least MIN_EXTRA_COST.
    _Rule(
        Anomaly.Kind.COST_JUMP,
        "cost_per_call",
        "cost",
        Decimal("1e-9"),
        lambda t, v, m, cost: (
            t.calls >= MIN_CALLS and t.cost >= JUMP * cost and t.cost - cost >= MIN_EXTRA_COST
        ),
    ),
    _Rule(
        Anomaly.Kind.TRAFFIC_SPIKE,
        "calls",
        "calls",
        Decimal(1),
        lambda t, v, m, c: v - m >= MIN_EXTRA_CALLS,
    ),
    _Rule(
        Anomaly.Kind.AMPLIFICATION_JUMP,
        "amplification",
        "traced_calls",
        Decimal("0.01"),
        lambda t, v, m, c: t.root_calls >= MIN_ROOT_CALLS,
    ),
    _Rule(
        Anomaly.Kind.TOKENS_JUMP,
        "tokens_per_request",
        "tokens",
        Decimal(1),
        lambda t, v, m, c: t.llm_calls >= MIN_CALLS,
    ),
    _Rule(
        Anomaly.Kind.RETRY_STORM,
        "retry_rate",
        "retries",
        Decimal("0.01"),
        lambda t, v, m, c: t.retries >= MIN_RETRIES and v - m >= MIN_RETRY_POINTS,
    ),
)


@dataclass(frozen=True)
class Finding:
    """A flagged hour of a series, before it is stored."""

    series: SeriesKey
    kind: str
    hour: datetime
    observed: Decimal
    baseline: Baseline
    score: Decimal
    moved: str
    moved_amount: Decimal  # the hour's amount of the moved measure
    compared: list[datetime]
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def alike(self) -> tuple[str, str, str, datetime]:
        """What a tenant's finding and an operator-wide one have in common."""
        return (self.series[1], self.series[2], self.kind, self.hour)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def series_of(tenant_id: UUID | None, row: UsageRow) -> list[SeriesKey]:
    """The series a row counts in: its tenant's, and its feature's and endpoint's if any;
    across every tenant (None) only the feature's and endpoint's."""
    keys: list[SeriesKey] = []
    if tenant_id is not None:
        keys.append((tenant_id, Anomaly.Scope.TENANT.value, ""))
    if row.feature:
        keys.append((tenant_id, Anomaly.Scope.FEATURE.value, row.feature))
    if row.endpoint:
        keys.append((tenant_id, Anomaly.Scope.ENDPOINT.value, row.endpoint))
    return keys


def in_series(series: SeriesKey, row: UsageRow) -> bool:
    _, scope, value = series
    if scope == Anomaly.Scope.FEATURE:
        return row.feature == value
    if scope == Anomaly.Scope.ENDPOINT:
        return row.endpoint == value
    return True


def _medians(before: list[Tally], method: str) -> dict[str, str | None]:
    """The baseline median of every figure, for the evidence of a flagged hour."""
    out = {}
    for name, figure in FIGURES.items():
        samples = [v for v in map(figure, before) if v is not None]
        out[name] = _text(baseline_of(samples, method=method).median) if samples else None
    return out


def _judge_hour(series: SeriesKey, hour: datetime, hours: dict[datetime, Tally]) -> list[Finding]:
    method, compared = baseline_hours(hour, present=hours.keys())
    now = hours.get(hour)
    if not method or now is None:
        return []
    before = [hours.get(h, Tally()) for h in compared]
    cost_median = baseline_of([t.cost for t in before], method=method).median
    out = []
    for rule in _RULES:
        value = FIGURES[rule.figure](now)
        samples = [v for v in map(FIGURES[rule.figure], before) if v is not None]
        if value is None or len(samples) < MIN_SAMPLES:
            continue
        baseline = baseline_of(samples, method=method)
        score = robust_z(value, baseline, floor=rule.floor)
        if score < Z_MIN or value < JUMP * baseline.median:
            continue
        if not rule.matters(now, value, baseline.median, cost_median):
            continue
        evidence = {
            "hour": {name: _text(f(now)) for name, f in FIGURES.items()},
            "baseline_median": _medians(before, method),
            "cost": _text(now.cost),
            "baseline_cost_median": _text(cost_median),
            "baseline_hours": len(compared),
        }
        out.append(
            Finding(
                series,
                rule.kind,
                hour,
                value,
                baseline,
                score,
                rule.moved,
                now.measure(rule.moved),
                compared,
                evidence,
            )
        )
    return out


def findings_of(
    rows: dict[UUID | None, list[UsageRow]], judged: list[datetime]
) -> list[tuple[Finding, list[UsageRow]]]:
    """Every flagged (series, kind, hour) of these tenants, with the tenant's rows."""
    out = []
    for tenant_id, tenant_rows in rows.items():
        series: dict[SeriesKey, dict[datetime, Tally]] = defaultdict(dict)
        for row in tenant_rows:
            for key in series_of(tenant_id, row):
                series[key].setdefault(row.hour, Tally()).add(row.tally)
        for key, hours in series.items():
            for hour in judged:
                out += [(f, tenant_rows) for f in _judge_hour(key, hour, hours)]
    return out


Cause = tuple[str, str, Decimal]  # dimension, value, share shift


def cause_candidates(
    *, finding: Finding, rows: list[UsageRow], prices: PriceContext
) -> list[Cause]:
    """For each dimension, the value whose share of the moved measure grew most between the
    baseline hours and the flagged hour, largest shift first: model, provider, workflow and
    environment from the rollups, a deployment tag from the series' raw events (tenant series
    only). Ties keep ``_CAUSE_ORDER``, the deployment tag last."""
    compared = set(finding.compared)
    out = []
    for dimension in _CAUSE_ORDER.get(finding.kind, CAUSE_DIMENSIONS):
        now: dict[str, Decimal] = defaultdict(Decimal)
        before: dict[str, Decimal] = defaultdict(Decimal)
        for row in rows:
            if row.hour == finding.hour or row.hour in compared:
                bucket = now if row.hour == finding.hour else before
                bucket[row.dims[dimension]] += row.tally.measure(finding.moved)
        out.append((dimension, *share_shift(now, before)))
    tenant_id, scope, scope_value = finding.series
    if tenant_id is not None:  # across every tenant it would be a scan of all raw events
        tags_now, tags_before = anomaly_deployment_tallies(
            tenant_id=tenant_id,
            scope=scope,
            scope_value=scope_value,
            hour=finding.hour,
            before=DEPLOYMENT_WINDOW,
            prices=prices,
        )
        shift = share_shift(
            {tag: t.measure(finding.moved) for tag, t in tags_now.items()},
            {tag: t.measure(finding.moved) for tag, t in tags_before.items()},
        )
        out.append(("deployment", *shift))
    return sorted(out, key=lambda cause: -cause[2])  # stable: ties keep their order


def _store(
    findings: list[tuple[Finding, list[UsageRow]]], prices: PriceContext, as_of: datetime
) -> list[Anomaly]:
    stored = []
    for finding, series_rows in findings:
        candidates = cause_candidates(
            finding=finding,
            rows=[r for r in series_rows if in_series(finding.series, r)],
            prices=prices,
        )
        # The largest shift names the cause, if it moved by CAUSE_MIN_SHIFT; the evidence
        # keeps every dimension that did (a release that switched the model moves both).
        named = [c for c in candidates if c[1] and c[2] >= CAUSE_MIN_SHIFT]
        dimension, value = named[0][:2] if named else ("", "")
        top = candidates[0][2] if candidates else ZERO
        evidence = {
            **finding.evidence,
            "cause_share_shift": _text(top.quantize(SHARE)),
            "cause_candidates": [
                {"dimension": d, "value": v, "share_shift": _text(s.quantize(SHARE))}
                for d, v, s in named
            ],
        }
        stored.append(
            anomaly_record(finding=finding, cause=(dimension, value), evidence=evidence, at=as_of)
        )
    return stored


def anomalies_detect(*, as_of: datetime, hours: int = JUDGED_HOURS) -> list[Anomaly]:
    """Judge the last ``hours`` complete hours before ``as_of``: the series of every tenant
    with usage in them, then each feature and endpoint across every tenant. Store (or
    update) an anomaly per flagged series, kind and hour, and publish ``anomaly.detected``
    once, when it is first stored. Safe to run twice or concurrently."""
    last = as_of.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    judged = [last - timedelta(hours=k) for k in range(1, hours + 1)]
    tenants = sorted(
        set(UsageRollup.objects.filter(hour__in=judged).values_list("tenant_id", flat=True))
    )
    if not tenants:
        return []
    prices = PriceContext()
    wanted = needed_hours(judged)
    stored = []
    # The largest tenant amount of each flagged feature or endpoint hour and kind.
    biggest: dict[tuple[str, str, str, datetime], Decimal] = defaultdict(Decimal)
    for start in range(0, len(tenants), TENANT_BATCH):
        batch: list[UUID] = tenants[start : start + TENANT_BATCH]
        found = findings_of(
            anomaly_usage_rows(tenant_ids=batch, hours=wanted, prices=prices), judged
        )
        for finding, _ in found:
            biggest[finding.alike] = max(biggest[finding.alike], finding.moved_amount)
        stored += _store(found, prices, as_of)
    # Across every tenant, a move that one tenant's anomaly explains (half of it or more) is
    # that tenant's anomaly, not the operator's: only the rest is stored.
    operator = [
        (finding, rows)
        for finding, rows in findings_of(
            anomaly_usage_rows(tenant_ids=None, hours=wanted, prices=prices), judged
        )
        if 2 * biggest.get(finding.alike, ZERO) < finding.moved_amount
    ]
    return stored + _store(operator, prices, as_of)


def _payload(anomaly: Anomaly) -> dict[str, Any]:
    return {
        "id": str(anomaly.id),
        "tenant": anomaly.tenant.external_id if anomaly.tenant else None,
        "scope": anomaly.scope,
        "scope_value": anomaly.scope_value,
        "kind": anomaly.kind,
        "hour": anomaly.hour.isoformat().replace("+00:00", "Z"),
        "observed": str(anomaly.observed),
        "baseline_median": str(anomaly.baseline_median),
        "score": str(anomaly.score),
        "cause_dimension": anomaly.cause_dimension,
        "cause_value": anomaly.cause_value,
    }


def anomaly_record(
    *, finding: Finding, cause: tuple[str, str], evidence: dict[str, Any], at: datetime
) -> Anomaly:
    """Store a finding, or update the figures of the anomaly already stored for its series,
    kind and hour (its status is left alone); ``anomaly.detected`` goes out on creation only."""
    tenant_id, scope, scope_value = finding.series
    key = {
        "tenant_id": tenant_id,
        "scope": scope,
        "scope_value": scope_value,
        "kind": finding.kind,
        "hour": finding.hour,
    }
    figures = {
        "observed": finding.observed,
        "baseline_median": finding.baseline.median.quantize(Decimal("1e-12")),
        "baseline_mad": finding.baseline.mad.quantize(Decimal("1e-12")),
        "baseline_method": finding.baseline.method,
        "score": finding.score.quantize(Decimal("0.0001")),
        "cause_dimension": cause[0],
        "cause_value": cause[1][:200],
        "evidence": evidence,
    }
    with transaction.atomic():
        anomaly = Anomaly.objects.select_for_update().filter(**key).first()
        if anomaly is None:
            anomaly = Anomaly(**key, **figures, detected_at=at)
            anomaly.full_clean(validate_constraints=False)
            try:
                with transaction.atomic():
                    anomaly.save()
            except IntegrityError:  # a concurrent run stored it first: update that one
                anomaly = Anomaly.objects.select_for_update().get(**key)
            else:
                # The operator's own event: cost figures never go to a tenant's endpoints.
                outbox_publish(topic="anomaly.detected", tenant_id=None, data=_payload(anomaly))
                return anomaly
        for name, value in figures.items():
            setattr(anomaly, name, value)
        anomaly.full_clean(validate_constraints=False)
        anomaly.save(update_fields=[*figures, "updated_at"])
    return anomaly


# The statuses each status may be reached from.
_MOVES: dict[str, set[str]] = {
    Anomaly.Status.ACKNOWLEDGED: {Anomaly.Status.OPEN},
    Anomaly.Status.RESOLVED: {Anomaly.Status.OPEN, Anomaly.Status.ACKNOWLEDGED},
}


def _anomaly_move(anomaly_id: UUID | str, status: str) -> Anomaly:
    try:
        anomaly = Anomaly.objects.select_for_update().get(id=anomaly_id)
    except (Anomaly.DoesNotExist, ValidationError, ValueError) as exc:
        raise AnomalyNotFound(f"anomaly {anomaly_id!s} does not exist", field="id") from exc
    if anomaly.status == status:
        return anomaly  # the same request twice changes nothing
    if anomaly.status not in _MOVES[status]:
        raise AnomalyStatusInvalid(
            f"status: a {anomaly.status} anomaly cannot become {status}", field="status"
        )
    anomaly.status = status
    anomaly.save(update_fields=["status", "updated_at"])
    return anomaly


@transaction.atomic(durable=True)
def anomaly_acknowledge(*, anomaly_id: UUID | str) -> Anomaly:
    """Mark an open anomaly as seen (idempotent); a resolved one stays resolved."""
    return _anomaly_move(anomaly_id, Anomaly.Status.ACKNOWLEDGED)


@transaction.atomic(durable=True)
def anomaly_resolve(*, anomaly_id: UUID | str) -> Anomaly:
    """Close an open or acknowledged anomaly (idempotent)."""
    return _anomaly_move(anomaly_id, Anomaly.Status.RESOLVED)
