"""Locking rate-card versions into history when a finalized invoice used them."""

from datetime import datetime
from uuid import UUID

from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from apps.catalog.errors import CatalogChanged
from apps.catalog.models import RateCardVersion


def rate_card_versions_lock(
    *, version_period_starts: dict[UUID, datetime], priced_hashes: dict[UUID, str] | None = None
) -> None:
    """Mark versions as used by finalized invoices (for the periods starting at the given
    times): they can no longer change, and later versions must start after those periods.
    Call in the finalizing transaction, in version id order; repeat calls only move
    ``locked_through`` forward.

    ``priced_hashes`` are the versions' content hashes when their charges were read for
    pricing: a version whose charges changed since (a catalog applied meanwhile) raises
    CatalogChanged, and the caller's transaction must roll back and price again. The check is
    in the UPDATE itself, which waits for a concurrent ``catalog_apply`` holding the row."""
    now = timezone.now()
    for version_id, period_start in sorted(version_period_starts.items()):
        rows = RateCardVersion.objects.filter(id=version_id)
        if priced_hashes is not None:
            rows = rows.filter(content_hash=priced_hashes[version_id])
        updated = rows.update(
            locked_at=Coalesce("locked_at", now),
            locked_through=Greatest(Coalesce("locked_through", period_start), period_start),
        )
        if not updated:
            raise CatalogChanged(
                f"rate-card version {version_id} changed while invoices were priced with it"
            )
