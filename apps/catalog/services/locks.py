"""Locking rate-card versions into history when a finalized invoice used them."""

from datetime import datetime
from uuid import UUID

from django.db.models import Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from apps.catalog.models import RateCardVersion


def rate_card_versions_lock(*, version_period_starts: dict[UUID, datetime]) -> None:
    """Mark versions as used by finalized invoices (for the periods starting at the given
    times): they can no longer change, and later versions must start after those periods.
    Call in the finalizing transaction; repeat calls only move ``locked_through`` forward."""
    now = timezone.now()
    for version_id, period_start in sorted(version_period_starts.items()):
        RateCardVersion.objects.filter(id=version_id).filter(
            Q(locked_at__isnull=True) | Q(locked_through__lt=period_start)
        ).update(
            locked_at=Coalesce("locked_at", now),
            locked_through=Greatest(Coalesce("locked_through", period_start), period_start),
        )
