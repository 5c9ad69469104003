"""The findings' lifecycle across scans: upserted never duplicated, reopened when a resolved
one comes back, resolved by the scan when gone; acknowledge and resolve with who and why;
``leakage.detected`` for every new or reopened finding."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from apps.assurance.errors import FindingNotFound, FindingTransitionInvalid, LeakageInvalid
from apps.assurance.models import Finding, LeakageScan
from apps.assurance.services.findings import finding_acknowledge, finding_resolve
from apps.assurance.services.scans import leakage_scan
from apps.assurance.tasks import leakage_scan_task
from apps.core.models import OutboxEvent
from tests.assurance.leakage_setup import (
    NOW,
    OCTOBER,
    calls,
    catalog_load,
    clean_acme,
    send,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture(autouse=True)
def catalog(db):
    catalog_load()


@pytest.fixture
def late(make_tenant):
    """acme's October plus 5 calls that arrived after its invoice: one late_unbilled."""
    acme = clean_acme(make_tenant)
    send(calls(5, day=30))
    return acme


def detected_events() -> list[dict]:
    return [e.data for e in OutboxEvent.objects.filter(topic="leakage.detected").order_by("id")]


def test_a_new_finding_is_open_and_announced(late):
    scan = leakage_scan(period_start=OCTOBER)

    finding = Finding.objects.get()
    assert (finding.status, finding.first_seen_at, finding.last_seen_at) == ("open", NOW, NOW)
    assert (scan.opened, scan.counts["late_unbilled"]) == (1, 1)
    # 5 late calls x 0.10 = 0.50
    assert detected_events() == [
        {
            "finding_id": str(finding.id),
            "category": "late_unbilled",
            "tenant": "acme",
            "period": "2026-10",
            "subject": "calls",
            "quantity": "5",
            "amount_at_risk": "0.5",
            "currency": "USD",
            "basis": "list_price",
            "reopened_count": 0,
        }
    ]
    assert OutboxEvent.objects.get(topic="leakage.detected").tenant_id == late.id


def test_a_rescan_updates_the_finding_and_never_duplicates_it(late, clock):
    leakage_scan(period_start=OCTOBER)
    clock.shift(timedelta(days=1))
    send(calls(2, day=30))  # two more late calls: 7 x 0.10 = 0.70

    scan = leakage_scan(period_start=OCTOBER)

    finding = Finding.objects.get()
    assert (finding.quantity, finding.amount_at_risk) == (Decimal(7), Decimal("0.70"))
    assert (finding.first_seen_at, finding.last_seen_at) == (NOW, NOW + timedelta(days=1))
    assert (scan.opened, scan.updated) == (0, 1)
    assert len(detected_events()) == 1  # announced once, when new
    assert LeakageScan.objects.count() == 2


def test_a_resolved_finding_that_reappears_reopens(late):
    leakage_scan(period_start=OCTOBER)
    finding = finding_resolve(
        finding_id=Finding.objects.get().id, actor="ann@finance", reason="billed by hand"
    )
    assert (finding.status, finding.status_by, finding.status_reason) == (
        "resolved",
        "ann@finance",
        "billed by hand",
    )

    scan = leakage_scan(period_start=OCTOBER)

    finding.refresh_from_db()
    assert (finding.status, finding.reopened_count, finding.status_by) == ("open", 1, "scan")
    assert scan.reopened == 1
    assert [e["reopened_count"] for e in detected_events()] == [0, 1]


def test_an_acknowledged_finding_stays_acknowledged_on_a_rescan(late):
    leakage_scan(period_start=OCTOBER)
    finding = finding_acknowledge(finding_id=Finding.objects.get().id, actor="ann@finance")

    leakage_scan(period_start=OCTOBER)

    finding.refresh_from_db()
    assert (finding.status, finding.status_by) == ("acknowledged", "ann@finance")
    assert len(detected_events()) == 1


def test_bad_transitions_and_unknown_ids_are_refused(late):
    leakage_scan(period_start=OCTOBER)
    finding = Finding.objects.get()
    with pytest.raises(LeakageInvalid) as missing_reason:
        finding_resolve(finding_id=finding.id, actor="ann", reason="  ")
    assert missing_reason.value.field == "reason"
    finding_resolve(finding_id=finding.id, actor="ann", reason="written off")
    with pytest.raises(FindingTransitionInvalid):
        finding_resolve(finding_id=finding.id, actor="ann", reason="again")
    with pytest.raises(FindingTransitionInvalid):
        finding_acknowledge(finding_id=finding.id, actor="ann")
    with pytest.raises(FindingNotFound):
        finding_acknowledge(finding_id="not-a-uuid", actor="ann")
    finding.refresh_from_db()
    assert (finding.status, finding.status_reason) == ("resolved", "written off")


def test_a_scan_of_one_tenant_leaves_the_others_findings_alone(late, make_tenant):
    make_tenant("ghost")
    send(calls(3, tenant="ghost"))
    leakage_scan(period_start=OCTOBER)
    assert Finding.objects.filter(status="open").count() == 2

    send(calls(1, tenant="acme", day=30))
    leakage_scan(period_start=OCTOBER, tenant_ids=[late.id])

    ghost = Finding.objects.get(tenant__external_id="ghost")
    assert ghost.status == "open" and ghost.last_seen_at == NOW
    # 6 late calls x 0.10 = 0.60
    assert Finding.objects.get(tenant=late).amount_at_risk == Decimal("0.60")


def test_the_command_prints_counts_per_category(late):
    out = StringIO()
    call_command("leakage_scan", "--period", "2026-10", "--tenant", "acme", stdout=out)

    text = out.getvalue()
    assert "late_unbilled      1" in text and "no_subscription    0" in text
    assert "1 findings; 1 new" in text


def test_the_command_refuses_a_bad_period(late):
    err = StringIO()
    with pytest.raises(SystemExit):
        call_command("leakage_scan", "--period", "2026-13", stderr=err)
    assert "period: '2026-13' is not a month" in err.getvalue()
    assert not Finding.objects.exists()


def test_the_task_scans_the_last_closed_and_the_current_month(late):
    result = leakage_scan_task()

    assert set(result) == {"2026-10", "2026-11"}
    assert result["2026-10"]["late_unbilled"] == 1
    assert set(LeakageScan.objects.values_list("period_start", flat=True)) == {
        OCTOBER,
        OCTOBER.replace(month=11),
    }
