"""Retention: raw events older than the retention go once rolled up and billed, never before;
unbilled, late and still-pending ones stay and are counted; derived data does not move.

Timeline: events of October and November 2026 arrive in their month, October is billed on
1 Nov 02:00 and November on 1 Dec 02:00 (which also reprices October for late usage); one
October event arrives on 10 Dec, after the last pricing of its period. The purge runs on
20 Jan 2027 with a 60-day retention: the cutoff is 21 Nov 2026 00:00."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum

from apps.assurance.detectors.usage import rollup_mismatch
from apps.billing.errors import BillingInvalid
from apps.billing.models import Invoice
from apps.billing.services.operations import invoice_void
from apps.billing.services.retention import billed_windows, events_retention_purge
from apps.billing.services.runs import billing_run
from apps.metering.models import Event, EventKey, RollupHour, RollupPending, UsageRollup
from apps.metering.selectors import usage_intake_check
from apps.metering.services.rollup import rollup_pending_run, rollup_rebuild
from tests.billing.billing_setup import catalog_load, invoice_of, subscribe
from tests.metering.ingesting import ingest_events

NOW = datetime(2026, 10, 31, 12, tzinfo=UTC)  # when October's events arrive
OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
PURGE_AT = datetime(2027, 1, 20, tzinfo=UTC)
CUTOFF = datetime(2026, 11, 21, tzinfo=UTC)  # PURGE_AT - 60 days
PENDING_HOUR = datetime(2026, 10, 20, 5, tzinfo=UTC)
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


def ev(event_id: str, at: str, tenant: str = "acme") -> dict:
    return {"id": event_id, "tenant": tenant, "type": "api.call", "timestamp": at}


def send(*events: dict) -> None:
    ingest_events(*events, backfill=True)
    rollup_pending_run()


@pytest.fixture
def history(make_tenant, clock, settings):
    """acme on the per-call plan from October, globex with no subscription."""
    settings.PERCALL_RAW_EVENT_RETENTION_DAYS = 60
    catalog_load()
    acme = make_tenant("acme")
    make_tenant("globex")
    subscribe(acme, "calls", OCT)
    send(
        ev("oct-1", "2026-10-05T10:00:00Z"),
        ev("oct-2", "2026-10-10T10:00:00Z"),
        ev("oct-3", "2026-10-10T10:30:00Z"),
        ev("oct-4", "2026-10-25T23:59:59.999Z"),
        ev("pending-1", "2026-10-20T05:10:00Z"),
        ev("globex-1", "2026-10-12T10:00:00Z", tenant="globex"),  # nobody bills globex
    )
    clock.move_to(NOV + timedelta(hours=2))
    assert billing_run(as_of=NOV + timedelta(hours=2)).finalized == 1
    clock.move_to(datetime(2026, 11, 30, tzinfo=UTC))
    send(ev("nov-1", "2026-11-09T10:00:00Z"), ev("nov-2", "2026-11-25T10:00:00Z"))
    clock.move_to(DEC + timedelta(hours=2))
    assert billing_run(as_of=DEC + timedelta(hours=2)).finalized == 1
    clock.move_to(datetime(2026, 12, 10, tzinfo=UTC))
    send(ev("late-1", "2026-10-15T10:00:00Z"))  # after October was last priced
    clock.move_to(datetime(2027, 1, 19, tzinfo=UTC))
    send(ev("jan-1", "2027-01-18T10:00:00Z"))
    clock.move_to(PURGE_AT)
    # the hour of pending-1 waits in the rollup queue again (a repair was queued)
    RollupPending.objects.create(tenant_id=acme.id, hour=PENDING_HOUR, marked_at=PURGE_AT)
    return acme


def kept() -> set[str]:
    return set(Event.objects.values_list("event_id", flat=True))


def rollup_totals() -> dict:
    return dict(UsageRollup.objects.values_list("tenant__external_id").annotate(n=Sum("events")))


def test_only_old_rolled_up_billed_events_go(history):
    invoices_before = [invoice_of(history, OCT), invoice_of(history, NOV)]
    rollups_before = rollup_totals()

    report = events_retention_purge()

    # oct-1..4 and nov-1 go; pending-1 (hour queued), late-1 (after the last pricing),
    # globex-1 (never billed) stay and are counted; nov-2 and jan-1 are newer than the cutoff
    assert report.cutoff == CUTOFF
    assert report.deleted == 5
    assert report.kept_older == 3
    assert kept() == {"pending-1", "late-1", "globex-1", "nov-2", "jan-1"}
    # derived data is unchanged: rollups, invoices, and every dedupe key is kept
    assert rollup_totals() == rollups_before == {"acme": 9, "globex": 1}  # 4 + 1 + 2 + 1 + 1
    assert [invoice_of(history, OCT), invoice_of(history, NOV)] == invoices_before
    assert EventKey.objects.count() == 10


def test_a_second_run_deletes_nothing(history):
    assert events_retention_purge().deleted == 5

    again = events_retention_purge()

    assert (again.deleted, again.kept_older) == (0, 3)
    assert len(kept()) == 5


def test_a_dry_run_counts_and_deletes_nothing(history, capsys):
    call_command("events_purge", "--dry-run")

    out = capsys.readouterr().out
    assert '"deleted": 5' in out and '"dry_run": true' in out and '"kept_older": 3' in out
    assert len(kept()) == 10


def test_retention_zero_keeps_everything(history, settings):
    settings.PERCALL_RAW_EVENT_RETENTION_DAYS = 0

    report = events_retention_purge()

    assert (report.cutoff, report.deleted) == (None, 0)
    assert len(kept()) == 10


def test_a_small_batch_size_deletes_the_same_rows_in_several_transactions(history):
    assert events_retention_purge(batch_size=2).deleted == 5
    assert kept() == {"pending-1", "late-1", "globex-1", "nov-2", "jan-1"}


def test_purged_hours_are_not_rebuilt_from_what_is_left(history):
    # given the purge, then a repair queues every October hour again
    events_retention_purge()
    before = rollup_totals()
    rollup_rebuild(tenant_id=history.id, start=OCT, end=NOV)
    rollup_pending_run()

    # then the purged hours keep their rollups; the others were rebuilt alike
    assert rollup_totals() == before
    hour = datetime(2026, 10, 10, 10, tzinfo=UTC)  # oct-2 and oct-3, both purged
    assert RollupHour.objects.get(tenant_id=history.id, hour=hour).purged_at == PURGE_AT
    check = usage_intake_check(tenant_id=history.id, hour=hour)
    assert (check.ingested, check.stored, check.rolled_up, check.purged) == (2, 0, 2, True)
    assert check.balanced


def test_the_pending_hour_is_purged_once_rolled_up(history):
    events_retention_purge()
    rollup_pending_run()  # the queued hour of pending-1 is rebuilt now

    assert events_retention_purge().deleted == 1
    assert "pending-1" not in kept()


def test_the_reconciliation_does_not_read_purged_hours_as_missing_events(history):
    from apps.assurance.scope import scan_scope

    events_retention_purge()

    scope = scan_scope(month=OCT.date(), tenant_ids=[history.id])
    assert rollup_mismatch(scope=scope) == []


def test_a_purged_period_cannot_be_reissued(history):
    events_retention_purge()
    october = Invoice.objects.get(tenant=history, period_start=OCT)

    with pytest.raises(BillingInvalid, match="reissue: the raw events"):
        invoice_void(invoice_id=october.id, reason="wrong rate", reissue=True)


def test_an_open_draft_or_a_void_awaiting_its_reissue_settles_nothing(history):
    # given October voided and reissued as a draft (before any purge)
    october = Invoice.objects.get(tenant=history, period_start=OCT)
    invoice_void(invoice_id=october.id, reason="wrong rate", reissue=True)

    windows = billed_windows(now=PURGE_AT, cutoff=CUTOFF)

    # then only November's range is billed, up to the cutoff
    assert [(w.start, w.end) for w in windows] == [(NOV, CUTOFF)]
    assert events_retention_purge().deleted == 1  # nov-1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_purges_at_once_delete_each_event_once(history):
    from tests.concurrency import run_together

    first, second = run_together(
        lambda: events_retention_purge(batch_size=1), lambda: events_retention_purge(batch_size=1)
    )

    assert first.deleted + second.deleted <= 5
    events_retention_purge()  # whatever a run left when it met the other's rows
    assert kept() == {"pending-1", "late-1", "globex-1", "nov-2", "jan-1"}


def test_the_last_run_is_on_metrics(history, client):
    from django.core.cache import cache
    from prometheus_client.parser import text_string_to_metric_families

    cache.clear()
    events_retention_purge()

    text = client.get("/metrics").content.decode()
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["percall_retention_kept_old_events"] == 3
    assert samples["percall_retention_deleted_events"] == 5


def test_a_scan_of_a_purged_month_still_reads_the_rollups_and_finds_the_late_event(history):
    from apps.assurance.detectors.billing import invoice_check
    from apps.assurance.scope import scan_scope

    def scan():
        figures = invoice_check(scope=scan_scope(month=OCT.date(), tenant_ids=[history.id]))
        money = figures.money[history.id]
        return money.billable, money.billed, sorted(f.category for f in figures.found)

    before = scan()
    events_retention_purge()

    # October billed 5 calls at 1.00; late-1 makes 6 in the rollups, before and after the purge
    assert scan() == before == (6, 5, ["late_unbilled"])


def test_a_purged_unique_count_is_worth_what_was_billed(history, clock, make_tenant):
    from apps.assurance.detectors.billing import invoice_check
    from apps.assurance.scope import scan_scope

    # given initech on the growth plan: 3 users in October (volume: all 3 at the second
    # tier's 0.80 = 2.40), 3 calls inside the 5 free
    initech = make_tenant("initech")
    subscribe(initech, "growth", OCT)
    clock.move_to(NOW)
    send(
        *(
            ev(f"i{n}", f"2026-10-0{n + 1}T10:00:00Z", tenant="initech")
            | {"properties": {"user_id": f"u{n}"}}
            for n in range(3)
        )
    )
    clock.move_to(NOV + timedelta(hours=2))
    billing_run(as_of=NOV + timedelta(hours=2))
    clock.move_to(PURGE_AT)
    assert [ln[1:] for ln in lines(initech)] == [("Growth base fee", "99.00"), ("users", "2.40")]

    events_retention_purge()

    # then the raw events are gone, and the scan does not reprice users at 0
    assert not Event.objects.filter(tenant_id=initech.id).exists()
    figures = invoice_check(scope=scan_scope(month=OCT.date(), tenant_ids=[initech.id]))
    money = figures.money[initech.id]
    assert (money.billable, money.billed) == (Decimal("2.40"), Decimal("2.40"))
    assert figures.found == []


def lines(tenant) -> list[tuple[str, str, str]]:
    invoice = invoice_of(tenant, OCT)
    return [
        (ln["kind"], ln["description"], ln["amount"])
        for ln in invoice["lines"]
        if ln["amount"] != "0.00"
    ]


def test_the_daily_beat_entry_runs_the_purge_task(history, settings):
    from celery import current_app

    import apps.billing.tasks  # noqa: F401  (workers discover it; a test imports it)

    entry = settings.CELERY_BEAT_SCHEDULE["billing-events-retention-purge"]
    task = current_app.tasks[entry["task"]]

    result = task.apply().get()

    assert (entry["schedule"], result["deleted"], result["kept_older"]) == (86400.0, 5, 3)


def test_a_period_starting_on_a_half_hour_counts_its_first_hour_as_purged(
    make_tenant, clock, settings
):
    from apps.assurance.detectors.billing import _purged_invoices

    # given a tenant at +05:30: its October starts at 18:30 UTC on 30 September, so its first
    # event (00:15 local) is in the 18:00 UTC hour
    catalog_load()
    kolkata = make_tenant("kolkata", timezone_name="Asia/Kolkata")
    october = datetime(2026, 9, 30, 18, 30, tzinfo=UTC)
    subscribe(kolkata, "calls", october)
    send(
        ev("k-1", "2026-09-30T18:45:00Z", tenant="kolkata"),
        ev("k-2", "2026-10-10T10:00:00Z", tenant="kolkata"),
    )
    clock.move_to(NOV + timedelta(hours=2))
    assert billing_run(as_of=NOV + timedelta(hours=2)).finalized == 1
    # when a purge with its cutoff at 1 October 00:00 UTC deletes k-1 only
    settings.PERCALL_RAW_EVENT_RETENTION_DAYS = 70
    clock.move_to(datetime(2026, 12, 10, tzinfo=UTC))
    assert events_retention_purge().deleted == 1
    assert kept() == {"k-2"}
    invoice = Invoice.objects.get(tenant=kolkata, period_start=october)

    # then the period counts as purged: no reissue, and the scans take its unique counts as billed
    assert _purged_invoices([invoice]) == {invoice.id}
    with pytest.raises(BillingInvalid, match="reissue: the raw events"):
        invoice_void(invoice_id=invoice.id, reason="wrong rate", reissue=True)


def test_a_void_and_reissue_during_a_run_keeps_the_reissued_periods_events(history):
    from apps.billing.services.retention import billed_windows_purge
    from apps.metering.selectors import purged_hours

    # given a run that computed its windows, October's among them
    windows = billed_windows(now=PURGE_AT, cutoff=CUTOFF)
    assert [(w.start, w.end) for w in windows] == [(OCT, NOV), (NOV, CUTOFF)]
    # when finance voids and reissues October before the run reaches its window
    october = Invoice.objects.get(tenant=history, period_start=OCT)
    invoice_void(invoice_id=october.id, reason="wrong rate", reissue=True)

    deleted, more = billed_windows_purge(windows=windows, now=PURGE_AT, cutoff=CUTOFF)

    # then the reissued draft still has every October event to be priced from; nov-1 goes
    assert (deleted, more) == (1, False)
    assert {"oct-1", "oct-2", "oct-3", "oct-4"} <= kept() and "nov-1" not in kept()
    assert not purged_hours(tenant_ids=[history.id], start=OCT, end=NOV)


def test_a_run_over_purged_history_costs_the_same_few_queries_however_long_it_is(
    history, make_tenant
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def run_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            events_retention_purge()
        return len(queries)

    # given acme's history purged once
    events_retention_purge()
    few = run_queries()
    # when 5 more tenants bring 11 billed months each (January to November 2026), purged too
    for n in range(5):
        subscribe(make_tenant(f"tenant-{n}"), "calls", datetime(2026, 1, 1, tzinfo=UTC))
    billing_run(as_of=PURGE_AT)
    assert len(billed_windows(now=PURGE_AT, cutoff=CUTOFF)) == 2 + 5 * 11
    events_retention_purge()

    # then another run reads the history in as many queries as before, and they are few
    # (on PostgreSQL a few more: the checks of the old, still non-empty partitions)
    assert run_queries() == few <= 16


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_batch_waits_for_a_void_in_progress_then_keeps_the_reissued_period(history, monkeypatch):
    import threading

    from apps.billing.services import operations
    from apps.billing.services.retention import billed_windows_purge
    from tests.concurrency import run_together

    # given a run's windows, and a void and reissue of October that holds its locks a while
    windows = billed_windows(now=PURGE_AT, cutoff=CUTOFF)
    october = Invoice.objects.get(tenant=history, period_start=OCT)
    locked = threading.Event()
    refund = operations.credits_refund

    def slow_refund(**kwargs):
        locked.set()  # the subscription and invoice are locked, the purged check passed
        threading.Event().wait(1)
        return refund(**kwargs)

    monkeypatch.setattr(operations, "credits_refund", slow_refund)

    def void():
        return invoice_void(invoice_id=october.id, reason="wrong rate", reissue=True)

    def purge():
        assert locked.wait(30)
        return billed_windows_purge(windows=windows, now=PURGE_AT, cutoff=CUTOFF)

    # when the run's batches start while the void is in progress
    draft, (deleted, _) = run_together(void, purge)

    # then the batches waited for it, saw the reissued draft, and kept October whole
    assert draft.status == Invoice.Status.DRAFT
    assert deleted == 1
    assert {"oct-1", "oct-2", "oct-3", "oct-4"} <= kept() and "nov-1" not in kept()
