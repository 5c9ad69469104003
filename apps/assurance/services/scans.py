"""The leakage scan: run every detector over a month, then bring the stored findings in line.

Detection only reads, so it runs before the write transaction; the write locks the month's
findings in scope, upserts what was found and resolves what is no longer found, and publishes
``leakage.detected`` for every finding that is new or back after being resolved.
"""

import time
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from apps.assurance.detectors.billing import (
    credit_drift,
    invoice_check,
    negative_margin,
    over_plan_at_zero,
)
from apps.assurance.detectors.usage import rollup_mismatch, uncosted, usage_check
from apps.assurance.models import Finding, LeakageScan
from apps.assurance.scope import Detected, scan_scope
from apps.assurance.selectors import report_generation_key
from apps.core.outbox import outbox_publish_many
from apps.tenants.models import Tenant

SCAN_ACTOR = "scan"
_FIGURES = ("quantity", "unit", "amount_at_risk", "currency", "basis", "evidence")


def leakage_detect(*, period_start: date, tenant_ids: list[UUID] | None = None) -> list[Detected]:
    """Every finding of the month as the detectors see it now, without storing anything."""
    scope = scan_scope(month=period_start, tenant_ids=tenant_ids)
    found = usage_check(scope=scope).found
    found += rollup_mismatch(scope=scope)
    found += uncosted(scope=scope)
    found += invoice_check(scope=scope).found
    found += credit_drift(scope=scope)
    found += over_plan_at_zero(scope=scope)
    found += negative_margin(scope=scope)
    return found


@dataclass
class _Changes:
    new: list[Finding]
    changed: list[Finding]
    reopened: list[Finding]
    resolved: list[Finding]


def leakage_scan(*, period_start: date, tenant_ids: list[UUID] | None = None) -> LeakageScan:
    """Scan a calendar month (``period_start`` its first day) for every tenant, or those
    given, and record the findings: new ones open; found again, their figures and
    ``last_seen_at`` move; resolved and found again, they reopen; no longer found, the scan
    resolves them. Safe to run twice or concurrently: one row per (category, tenant, month,
    subject), guarded by a unique constraint."""
    if period_start.day != 1:
        raise ValueError(f"period_start {period_start} is not the first day of a month")
    started = timezone.now()
    detected = leakage_detect(period_start=period_start, tenant_ids=tenant_ids)
    with transaction.atomic(durable=True):
        scan = LeakageScan(
            period_start=period_start,
            tenant_ids=None if tenant_ids is None else sorted(str(t) for t in tenant_ids),
            started_at=started,
        )
        scan.full_clean()
        scan.save()
        changes = _apply(scan, period_start, tenant_ids, detected)
        scan.finished_at = timezone.now()
        scan.counts = _counts(detected)
        scan.opened, scan.reopened = len(changes.new), len(changes.reopened)
        scan.updated, scan.resolved = len(changes.changed), len(changes.resolved)
        scan.save()
        _publish([*changes.new, *changes.reopened])
        # The month's cached reports are out of date once this commits.
        generation = report_generation_key(period_start)
        transaction.on_commit(lambda: cache.set(generation, time.time_ns(), None))
    return scan


def _counts(detected: list[Detected]) -> dict[str, int]:
    counts = {c.value: 0 for c in Finding.Category}
    for item in detected:
        counts[item.category] += 1
    return counts


def _apply(
    scan: LeakageScan, month: date, tenant_ids: list[UUID] | None, detected: list[Detected]
) -> _Changes:
    now = scan.started_at
    existing = Finding.objects.select_for_update().filter(period_start=month).order_by("id")
    if tenant_ids is not None:
        existing = existing.filter(tenant_id__in=tenant_ids)
    stored = {(f.category, f.tenant_id, f.subject): f for f in existing}
    changes = _Changes([], [], [], [])
    for item in detected:
        finding = stored.pop(item.key, None)
        if finding is None:
            changes.new.append(_new(item, month, scan))
            continue
        _figures_set(finding, item, scan)
        if finding.status == Finding.Status.RESOLVED:
            _status_set(finding, Finding.Status.OPEN, "found again by the scan", now)
            finding.reopened_count += 1
            changes.reopened.append(finding)
        else:
            changes.changed.append(finding)
    for finding in stored.values():
        if finding.status != Finding.Status.RESOLVED:
            _status_set(finding, Finding.Status.RESOLVED, "no longer found by the scan", now)
            finding.last_scan = scan
            changes.resolved.append(finding)
    for finding in changes.new:
        finding.full_clean(validate_constraints=False)
    # A scan running at the same time may have inserted the same key: its row stands, and
    # only rows inserted here are announced.
    Finding.objects.bulk_create(changes.new, ignore_conflicts=True)
    mine = set(
        Finding.objects.filter(id__in=[f.id for f in changes.new]).values_list("id", flat=True)
    )
    changes.new = [f for f in changes.new if f.id in mine]
    Finding.objects.bulk_update(
        [*changes.changed, *changes.reopened, *changes.resolved],
        fields=[*_FIGURES, "last_seen_at", "last_scan", "status", "status_by", "status_reason",
                "status_changed_at", "reopened_count", "updated_at"],
    )  # fmt: skip
    return changes


def _new(item: Detected, month: date, scan: LeakageScan) -> Finding:
    finding = Finding(
        category=item.category,
        tenant_id=item.tenant_id,
        period_start=month,
        subject=item.subject,
        first_seen_at=scan.started_at,
        status=Finding.Status.OPEN,
        status_by=SCAN_ACTOR,
        status_changed_at=scan.started_at,
    )
    _figures_set(finding, item, scan)
    return finding


def _figures_set(finding: Finding, item: Detected, scan: LeakageScan) -> None:
    finding.quantity = item.quantity
    finding.unit = item.unit
    finding.amount_at_risk = _places(item.amount)
    finding.currency = item.currency
    finding.basis = item.basis
    finding.evidence = item.evidence
    finding.last_seen_at = scan.started_at
    finding.last_scan = scan
    finding.updated_at = scan.started_at


def _places(amount: Decimal) -> Decimal:
    """Full precision, within the column's 12 places (cost shares can have more)."""
    return amount.quantize(Decimal("1E-12"))


def _status_set(finding: Finding, status: str, reason: str, at: datetime) -> None:
    finding.status = status
    finding.status_by = SCAN_ACTOR
    finding.status_reason = reason
    finding.status_changed_at = at


def finding_event_data(finding: Finding, tenant_external_id: str) -> dict[str, Any]:
    return {
        "finding_id": str(finding.id),
        "category": finding.category,
        "tenant": tenant_external_id,
        "period": f"{finding.period_start:%Y-%m}",
        "subject": finding.subject,
        "quantity": format(Decimal(finding.quantity).normalize(), "f"),
        "amount_at_risk": format(Decimal(finding.amount_at_risk).normalize(), "f"),
        "currency": finding.currency,
        "basis": finding.basis,
        "reopened_count": finding.reopened_count,
    }


def _publish(findings: list[Finding]) -> None:
    if not findings:
        return
    names = dict(
        Tenant.objects.filter(id__in={f.tenant_id for f in findings}).values_list(
            "id", "external_id"
        )
    )
    outbox_publish_many(
        events=[
            ("leakage.detected", finding_event_data(f, names[f.tenant_id]), f.tenant_id)
            for f in findings
        ]
    )
