"""Low-credit alerts: a grant (a credit pack bought, or credits granted) consumed past 80 %
gets one ``CreditAlert`` and a ``credits.low`` event, with its projected depletion date at the
burn rate of the last 30 days. Runs with every budget evaluation."""

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction

from apps.alerts.models import CreditAlert
from apps.alerts.selectors import GrantStatus, grant_statuses, grants_consumed_past
from apps.core.outbox import outbox_publish

LOW_PERCENT = 80


def _iso(moment: Any) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def credits_low_data(status: GrantStatus, threshold: int) -> dict[str, Any]:
    """The payload of ``credits.low``."""
    grant = status.grant
    return {
        "tenant": grant.tenant.external_id,
        "threshold": threshold,
        "grant": {
            "id": str(grant.id),
            "currency": grant.currency,
            "amount": str(grant.amount),
            "remaining": str(status.remaining),
            "consumed_percent": str(status.consumed_percent),
            "reason": grant.reason,
            "expires_at": _iso(grant.expires_at),
            "projected_depletion_on": _iso(status.projected_depletion_on),
        },
    }


def credit_alerts_run(*, as_of: datetime, threshold: int = LOW_PERCENT) -> int:
    """Alert every usable grant consumed past ``threshold`` % that has not been alerted;
    returns the alerts fired. The unique constraint keeps it to once per grant."""
    grants = list(
        grants_consumed_past(percent=threshold, as_of=as_of)
        .exclude(alerts__threshold=threshold)
        .select_related("tenant")
        .order_by("id")
    )
    fired = 0
    for status in grant_statuses(grants=grants, as_of=as_of):
        with transaction.atomic():
            try:
                with transaction.atomic():
                    CreditAlert.objects.create(
                        grant=status.grant,
                        threshold=threshold,
                        consumed_percent=status.consumed_percent,
                        remaining_amount=status.remaining,
                        projected_depletion_on=status.projected_depletion_on,
                        fired_at=as_of,
                    )
            except IntegrityError:  # another run fired it
                continue
            outbox_publish(
                topic="credits.low",
                tenant_id=status.grant.tenant_id,
                data=credits_low_data(status, threshold),
            )
            fired += 1
    return fired
