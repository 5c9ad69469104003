"""Retention on PostgreSQL: a month partition emptied by the purge is dropped whole."""

from datetime import UTC, datetime

import pytest
from django.db import connection

from apps.metering.services.partitions import event_partitions_ensure
from apps.metering.services.retention import event_partitions_drop_empty
from tests.metering.ingesting import ingest_events

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
pytestmark = [pytest.mark.django_db, pytest.mark.postgres, pytest.mark.usefixtures("clock")]


def partitions() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relname LIKE 'metering_event_p2026_%%'")
        return {name for (name,) in cursor.fetchall()}


def test_empty_months_before_the_cutoff_are_dropped_and_the_others_kept(make_tenant):
    # given August empty, September holding an event, October empty but ending after the cutoff
    make_tenant("acme")
    event_partitions_ensure(months={(2026, 8), (2026, 9), (2026, 10)})
    ingest_events(
        {"id": "s1", "tenant": "acme", "type": "api.call", "timestamp": "2026-09-03T10:00:00Z"},
        backfill=True,
    )

    dropped = event_partitions_drop_empty(before=datetime(2026, 10, 15, tzinfo=UTC))

    assert dropped == ["metering_event_p2026_08"]
    assert {"metering_event_p2026_09", "metering_event_p2026_10"} <= partitions()
    assert "metering_event_p2026_08" not in partitions()


def test_a_month_another_purge_dropped_first_is_skipped(monkeypatch):
    """Two purges at once both list an emptied month; the one that comes second finds its
    table gone, and carries on rather than failing the run."""
    from apps.metering.services import partitions as partitions_module

    event_partitions_ensure(months={(2026, 8)})
    # July is listed as existing but has no table: as if the other purge had just dropped it.
    monkeypatch.setattr(partitions_module, "_existing", lambda: {(2026, 7), (2026, 8)})

    dropped = event_partitions_drop_empty(before=datetime(2026, 10, 1, tzinfo=UTC))

    assert dropped == ["metering_event_p2026_08"]
    assert "metering_event_p2026_08" not in partitions()
