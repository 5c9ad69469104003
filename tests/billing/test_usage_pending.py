"""A metering outage is not zero usage: billing finalizes no period whose usage still waits in
the rollup queue, and finalizes it with all of it once the queue drains; the operator is
alerted when the queue stalls past the limit."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from apps.alerts.models import PipelineAlert
from apps.alerts.services.notifications import email_notifications_queue
from apps.alerts.services.pipeline import pipeline_lag_evaluate
from apps.billing.errors import UsagePending
from apps.billing.models import Invoice
from apps.billing.services.operations import invoice_finalize
from apps.billing.services.runs import billing_run
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.core.models import OutboxEvent
from apps.metering.models import RollupPending
from apps.metering.services.rollup import rollup_pending_run
from tests.billing.billing_setup import PER_CALL_CATALOG, subscribe
from tests.metering.ingesting import ingest_events

pytestmark = pytest.mark.django_db

CATALOG = PER_CALL_CATALOG
OCT = datetime(2026, 10, 1, tzinfo=UTC)
AFTER_GRACE = datetime(2026, 11, 3, tzinfo=UTC)


def calls(tenant: str, count: int, day: int = 10, prefix: str = "e") -> None:
    """``count`` calls of ``tenant`` in October, left in the rollup queue (tests run in one
    transaction, so the on-commit rollup never fires)."""
    ingest_events(
        *(
            {"id": f"{prefix}{i}", "tenant": tenant, "type": "api.call",
             "timestamp": f"2026-10-{day:02d}T10:{i:02d}:00Z"}
            for i in range(count)
        )
    )  # fmt: skip


@pytest.fixture
def acme(make_tenant):
    with time_machine.travel(datetime(2026, 10, 20, tzinfo=UTC), tick=False):
        catalog_apply(doc=catalog_parse(content=json.dumps(CATALOG)))
        tenant = make_tenant("acme")
        subscribe(tenant, "calls", OCT)
        calls("acme", 3)
    return tenant


def invoice_of(tenant) -> Invoice:
    return Invoice.objects.get(tenant=tenant, period_start=OCT)


def test_a_period_with_usage_still_queued_waits(acme):
    assert RollupPending.objects.filter(tenant=acme).exists()

    with time_machine.travel(AFTER_GRACE, tick=False):
        report = billing_run()

    assert (report.finalized, report.waiting) == (0, 1)
    assert invoice_of(acme).status == Invoice.Status.DRAFT


def test_the_next_run_after_the_queue_drains_bills_all_of_it(acme):
    with time_machine.travel(AFTER_GRACE, tick=False):
        billing_run()
        rollup_pending_run()
        report = billing_run()

    invoice = invoice_of(acme)
    assert (report.finalized, report.waiting) == (1, 0)
    assert invoice.status == Invoice.Status.FINALIZED
    assert invoice.total_amount == Decimal("3.00")  # 3 calls at 1.00


def test_another_tenants_queue_does_not_hold_this_one(acme, make_tenant):
    with time_machine.travel(datetime(2026, 10, 20, tzinfo=UTC), tick=False):
        rollup_pending_run()  # acme's usage is in
        make_tenant("late")
        calls("late", 2, prefix="l")  # late has no subscription; its rows wait

    with time_machine.travel(AFTER_GRACE, tick=False):
        report = billing_run()

    assert report.finalized == 1 and invoice_of(acme).total_amount == Decimal("3.00")


def test_usage_of_the_next_period_does_not_hold_this_one(acme):
    with time_machine.travel(datetime(2026, 10, 20, tzinfo=UTC), tick=False):
        rollup_pending_run()
    with time_machine.travel(datetime(2026, 11, 2, 12, tzinfo=UTC), tick=False):
        ingest_events(
            {"id": "nov", "tenant": "acme", "type": "api.call", "timestamp": "2026-11-02T11:00:00Z"}
        )

    with time_machine.travel(AFTER_GRACE, tick=False):
        report = billing_run()

    assert report.finalized == 1 and invoice_of(acme).total_amount == Decimal("3.00")


def test_usage_that_arrived_after_the_grace_period_does_not_hold_the_period(acme):
    """A client replaying old events after the period closed must not hold its invoice: what
    arrives after the grace period is late usage, billed on the next invoice."""
    with time_machine.travel(datetime(2026, 10, 20, tzinfo=UTC), tick=False):
        rollup_pending_run()
    with time_machine.travel(datetime(2026, 11, 2, 12, tzinfo=UTC), tick=False):
        calls("acme", 1, day=15, prefix="replayed")  # October usage, queued on 2 November

    with time_machine.travel(AFTER_GRACE, tick=False):
        report = billing_run()

    assert (report.finalized, report.waiting) == (1, 0)
    assert invoice_of(acme).total_amount == Decimal("3.00")  # the replayed call comes later


def test_finalizing_by_hand_while_usage_is_queued_is_refused(acme, make_key, api):
    with time_machine.travel(AFTER_GRACE, tick=False):
        billing_run()
        draft = invoice_of(acme)
        with pytest.raises(UsagePending):
            invoice_finalize(invoice_id=draft.id)
        answer = api(make_key(scopes=("read", "admin"))).post(
            f"/api/v1/invoices/{draft.id}/finalize", {}
        )

    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "usage_pending"
    assert invoice_of(acme).status == Invoice.Status.DRAFT


def test_a_stalled_queue_alerts_once_and_recovers(acme, settings):
    settings.PERCALL_ROLLUP_LAG_ALERT_SECONDS = 600
    settings.PERCALL_OPERATOR_ALERT_EMAILS = ["oncall@operator.example"]
    marked = datetime(2026, 10, 20, tzinfo=UTC)  # when acme's 3 calls were queued

    assert pipeline_lag_evaluate(now=marked + timedelta(seconds=599)) is None
    opened = pipeline_lag_evaluate(now=marked + timedelta(seconds=660))
    again = pipeline_lag_evaluate(now=marked + timedelta(seconds=900))

    assert opened is not None and again is not None and again.id == opened.id
    assert (again.lag_seconds, again.peak_lag_seconds, again.pending) == (660, 900, 1)
    lagging = list(OutboxEvent.objects.filter(topic="pipeline.lagging"))
    assert len(lagging) == 1 and lagging[0].tenant_id is None
    assert lagging[0].data["alert"]["tenants"] == 1
    assert email_notifications_queue(events=lagging) == 1

    with time_machine.travel(marked + timedelta(seconds=950), tick=False):
        rollup_pending_run()
    assert pipeline_lag_evaluate(now=marked + timedelta(seconds=960)) is None

    alert = PipelineAlert.objects.get(id=opened.id)
    assert alert.status == PipelineAlert.Status.RESOLVED
    assert alert.resolved_at == marked + timedelta(seconds=960)
    assert OutboxEvent.objects.filter(topic="pipeline.recovered").count() == 1
