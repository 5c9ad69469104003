"""Retention of raw events: which ranges are billed, and the purge run over them.

Raw events older than ``PERCALL_RAW_EVENT_RETENTION_DAYS`` are deleted once rolled up and
billed, never before. "Billed" is read from the invoices (docs/metering.md, Retention):

- a subscription invoice of the event's tenant covers the event's time (``period_start <=
  timestamp < period_end``), and is finalized or paid, or void with no other invoice of that
  subscription and period (a void without a reissue settled the period as not charged; a void
  whose reissue is still a draft settles nothing);
- no draft invoice of the tenant overlaps that range, and the period ended more than the late
  window ago, so no later invoice can add an adjustment for it;
- the event arrived at least the billing grace period before the last time its period was
  priced: the invoice's own finalization, or a later invoice of the subscription finalized
  while the period could still take late usage (each such run reprices it for adjustments).
  The grace is what billing itself allows the rollups before it finalizes.

With several subscriptions covering the same time, the earliest of their pricing times counts.
Old events outside every such range (no subscription, a period still open, late arrivals) are
kept and counted: they are what the leakage scans are made of.
"""

import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from apps.billing.models import Invoice
from apps.billing.services.subscriptions import subscriptions_for_update
from apps.metering.services.retention import (
    PurgeWindow,
    event_partitions_drop_empty,
    event_rows_purge,
    event_windows_left,
    events_older_count,
    purge_cutoff,
)

logger = logging.getLogger(__name__)
RETENTION_REPORT_KEY = "percall:retention:last-report"
_SETTLED = (Invoice.Status.FINALIZED, Invoice.Status.PAID)


@dataclass
class RetentionReport:
    """What one purge run did. ``kept_older`` counts the events older than the cutoff still
    stored afterwards: not rolled up, not billed, or arrived after their period was priced."""

    retention_days: int
    cutoff: datetime | None
    dry_run: bool
    windows: int = 0
    deleted: int = 0
    kept_older: int = 0
    more: bool = False  # the row budget ran out: the task goes on in a new run
    partitions_dropped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cutoff"] = self.cutoff.isoformat() if self.cutoff else None
        return data


def _priced_at(invoices: list[dict[str, Any]], window: timedelta) -> dict[Any, datetime]:
    """Per invoice id: the last time its period was priced (its finalization, or a later
    finalized invoice of its subscription issued while the period took late usage)."""
    by_subscription: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
    for inv in invoices:
        if inv["status"] in _SETTLED:
            by_subscription[inv["subscription_id"]].append(inv)
    priced = {}
    for inv in invoices:
        at = inv["issued_at"] or inv["voided_at"]
        if at is None:  # a draft: not priced for good yet
            continue
        for later in by_subscription.get(inv["subscription_id"], []):
            if (
                later["period_start"] > inv["period_start"]
                and later["issued_at"] < inv["period_end"] + window
                and later["issued_at"] > at
            ):
                at = later["issued_at"]
        priced[inv["id"]] = at
    return priced


def billed_windows(
    *, now: datetime, cutoff: datetime, tenant_ids: list[UUID] | None = None
) -> list[PurgeWindow]:
    """The billed ranges before ``cutoff``, one per tenant and settled period (clipped to the
    cutoff), each with the time up to which arrivals were billed; of ``tenant_ids`` only, when
    given (every rule reads the invoices of one tenant)."""
    late = timedelta(days=settings.PERCALL_INGEST_LATE_WINDOW_DAYS)
    grace = timedelta(seconds=settings.PERCALL_BILLING_GRACE_SECONDS)
    # Later invoices reprice a period while it takes late usage: read those too.
    rows = Invoice.objects.filter(
        kind=Invoice.Kind.SUBSCRIPTION, period_start__lt=cutoff + late + timedelta(days=366)
    )
    if tenant_ids is not None:
        rows = rows.filter(tenant_id__in=tenant_ids)
    invoices: list[dict[str, Any]] = [
        dict(row)
        for row in rows.values(
            "id", "tenant_id", "subscription_id", "status", "period_start", "period_end",
            "issued_at", "voided_at",
        )
    ]  # fmt: skip
    live = {
        (i["subscription_id"], i["period_start"])
        for i in invoices
        if i["status"] != Invoice.Status.VOID
    }
    drafts: dict[UUID, list[tuple[datetime, datetime]]] = defaultdict(list)
    for i in invoices:
        if i["status"] == Invoice.Status.DRAFT:
            drafts[i["tenant_id"]].append((i["period_start"], i["period_end"]))
    priced = _priced_at(invoices, late)
    settled: dict[UUID, list[tuple[datetime, datetime, datetime]]] = defaultdict(list)
    for i in invoices:
        if i["period_start"] >= cutoff or i["period_end"] > now - late:
            continue
        if i["status"] == Invoice.Status.VOID:
            if (i["subscription_id"], i["period_start"]) in live:
                continue  # its reissue decides
        elif i["status"] not in _SETTLED:
            continue
        if any(s < i["period_end"] and i["period_start"] < e for s, e in drafts[i["tenant_id"]]):
            continue
        settled[i["tenant_id"]].append((i["period_start"], i["period_end"], priced[i["id"]]))
    windows = []
    for tenant_id, ranges in settled.items():
        for start, end, at in ranges:
            # Several subscriptions over one time: the earliest pricing is what all of them saw.
            at = min([at, *(a for s, e, a in ranges if s < end and start < e)])
            windows.append(PurgeWindow(tenant_id, start, min(end, cutoff), at - grace))
    return sorted(set(windows), key=lambda w: (str(w.tenant_id), w.start))


def _still_billed(window: PurgeWindow, *, now: datetime, cutoff: datetime) -> bool:
    """Whether ``window`` is still billed, read in a delete batch's transaction under the row
    locks of its tenant's subscriptions. Those are the first lock of every invoice write (a
    void and reissue, a billing run), so the check and the delete are one step for them: a
    reissue committed since the window was computed is seen here and the batch deletes
    nothing, and one that comes later waits for the batch, then finds the hours purged and
    refuses."""
    locked = subscriptions_for_update().filter(tenant_id=window.tenant_id).order_by("id")
    list(locked.values_list("id", flat=True))
    return any(
        w.start <= window.start and window.end <= w.end and w.billed_as_of >= window.billed_as_of
        for w in billed_windows(now=now, cutoff=cutoff, tenant_ids=[window.tenant_id])
    )


def billed_windows_purge(
    *,
    windows: list[PurgeWindow],
    now: datetime,
    cutoff: datetime,
    dry_run: bool = False,
    batch_size: int = 5000,
    max_rows: int = 2_000_000,
) -> tuple[int, bool]:
    """Delete the purgeable events of ``windows`` (computed by ``billed_windows`` with the same
    ``now`` and ``cutoff``, maybe long before: a run lasts up to an hour), each batch checking
    under lock that its window is still billed. Returns how many rows were deleted (or, with
    ``dry_run``, would be) and whether the ``max_rows`` budget ran out first. Windows with
    nothing left to delete (all of history, after the first runs) are skipped in one query."""
    deleted = 0
    for window in event_windows_left(windows=windows, before=cutoff):
        if deleted >= max_rows:
            return deleted, True
        deleted += event_rows_purge(
            window=window,
            now=now,
            batch_size=batch_size,
            dry_run=dry_run,
            still_billed=partial(_still_billed, window, now=now, cutoff=cutoff),
        )
    return deleted, False


def events_retention_purge(
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int = 5000,
    max_rows: int = 2_000_000,
) -> RetentionReport:
    """Delete the raw events older than the retention that are rolled up and billed, in
    batches of ``batch_size`` rows (each its own transaction), at most about ``max_rows`` per
    run (``more`` says there is more). With ``dry_run`` nothing is deleted and ``deleted`` is
    what would be. Safe to run twice or concurrently."""
    now = now or timezone.now()
    days = settings.PERCALL_RAW_EVENT_RETENTION_DAYS
    cutoff = purge_cutoff(now=now, retention_days=days)
    report = RetentionReport(retention_days=days, cutoff=cutoff, dry_run=dry_run)
    if cutoff is None:
        return report
    windows = billed_windows(now=now, cutoff=cutoff)
    report.windows = len(windows)
    report.deleted, report.more = billed_windows_purge(
        windows=windows,
        now=now,
        cutoff=cutoff,
        dry_run=dry_run,
        batch_size=batch_size,
        max_rows=max_rows,
    )
    if not dry_run and not report.more:
        report.partitions_dropped = event_partitions_drop_empty(before=cutoff)
    older = events_older_count(before=cutoff)
    report.kept_older = older - report.deleted if dry_run else older
    logger.info(
        "retention: %s %d raw events before %s; %d older events kept",
        "would delete" if dry_run else "deleted",
        report.deleted,
        cutoff.isoformat(),
        report.kept_older,
    )
    if report.kept_older and not report.more:
        # Not an error: unbilled usage is evidence the leakage scans and finance need.
        logger.warning(
            "retention: %d raw events older than %s are kept: not rolled up, not billed or "
            "received after their period was priced",
            report.kept_older,
            cutoff.isoformat(),
        )
    if not dry_run:
        cache.set(RETENTION_REPORT_KEY, report.as_dict(), timeout=None)
    return report
