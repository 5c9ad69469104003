"""One open draft per cost center and month, the Unallocated statement (no cost center)
included: the database refuses a second, on SQLite as on PostgreSQL."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.chargeback.models import Statement


def draft(**extra) -> Statement:
    return Statement.objects.create(
        period_start=date(2026, 10, 1),
        period_end=date(2026, 11, 1),
        currency="USD",
        direct_amount=Decimal(0),
        allocated_amount=Decimal(0),
        total_amount=Decimal(0),
        drafted_at=timezone.now(),
        **extra,
    )


@pytest.mark.django_db
def test_a_second_unallocated_draft_for_a_month_is_refused():
    draft()
    with pytest.raises(IntegrityError), transaction.atomic():
        draft()
    # an issued one beside the draft is fine, and so is another month's draft
    draft(status=Statement.Status.ISSUED, number="SB-2026-10-0001")
    Statement.objects.create(
        period_start=date(2026, 11, 1),
        period_end=date(2026, 12, 1),
        currency="USD",
        direct_amount=Decimal(0),
        allocated_amount=Decimal(0),
        total_amount=Decimal(0),
        drafted_at=timezone.now(),
    )
    assert Statement.objects.count() == 3
