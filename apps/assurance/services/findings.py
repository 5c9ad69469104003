"""Working the leakage queue: a person acknowledges a finding, or resolves it with a reason."""

from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.assurance.errors import FindingNotFound, FindingTransitionInvalid, LeakageInvalid
from apps.assurance.models import Finding
from apps.core.audit import audit_record

REASON_MAX = 500


def _locked(finding_id: UUID | str) -> Finding:
    try:
        return Finding.objects.select_for_update().get(id=finding_id)
    except (Finding.DoesNotExist, ValueError, ValidationError) as exc:
        raise FindingNotFound(f"finding {finding_id} not found", field="id") from exc


def _actor_check(actor: str) -> str:
    if not actor.strip():
        raise LeakageInvalid("actor: who changes the finding is required", field="actor")
    return actor.strip()[:200]


def _reason_check(reason: str, *, required: bool) -> str:
    reason = reason.strip()
    if required and not reason:
        raise LeakageInvalid("reason: say why the finding is resolved", field="reason")
    if len(reason) > REASON_MAX:
        raise LeakageInvalid(
            f"reason: {len(reason)} characters; at most {REASON_MAX}", field="reason"
        )
    return reason


def _move(finding: Finding, status: str, actor: str, reason: str) -> Finding:
    before = finding.status
    finding.status = status
    finding.status_by = actor
    finding.status_reason = reason
    finding.status_changed_at = timezone.now()
    finding.full_clean(validate_constraints=False)
    finding.save(
        update_fields=["status", "status_by", "status_reason", "status_changed_at", "updated_at"]
    )
    audit_record(
        action=f"finding.{'resolve' if status == Finding.Status.RESOLVED else 'acknowledge'}",
        target_type="finding",
        target_id=finding.id,
        tenant_id=finding.tenant_id,
        before={"status": before},
        after={"status": status, "by": actor, "reason": reason, "category": finding.category,
               "amount_at_risk": finding.amount_at_risk, "currency": finding.currency},
    )  # fmt: skip
    return finding


@transaction.atomic(durable=True)
def finding_acknowledge(*, finding_id: UUID | str, actor: str, reason: str = "") -> Finding:
    """Someone is on it: an open finding becomes acknowledged (it still counts as at risk)."""
    actor, reason = _actor_check(actor), _reason_check(reason, required=False)
    finding = _locked(finding_id)
    if finding.status != Finding.Status.OPEN:
        raise FindingTransitionInvalid(
            f"status: finding {finding.id} is {finding.status}; only an open one is acknowledged",
            field="status",
        )
    return _move(finding, Finding.Status.ACKNOWLEDGED, actor, reason)


@transaction.atomic(durable=True)
def finding_resolve(*, finding_id: UUID | str, actor: str, reason: str) -> Finding:
    """Close an open or acknowledged finding, saying why. A later scan that finds it again
    reopens it."""
    actor, reason = _actor_check(actor), _reason_check(reason, required=True)
    finding = _locked(finding_id)
    if finding.status == Finding.Status.RESOLVED:
        raise FindingTransitionInvalid(
            f"status: finding {finding.id} is already resolved", field="status"
        )
    return _move(finding, Finding.Status.RESOLVED, actor, reason)
