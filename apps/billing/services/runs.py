"""Billing runs: close every subscription period that ended, in chunks that resume.

Each chunk locks up to ``chunk`` subscriptions that are due (``SKIP LOCKED``, in id order), so
two runs at once split the work and never bill one subscription twice; a crashed run leaves
whole chunks done and the rest for the next run (``billed_through`` says where each
subscription stands). A subscription whose period cannot be priced is reported and skipped,
never silently dropped.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import F, Prefetch, Q
from django.utils import timezone

from apps.billing.models import PlanChange, Subscription
from apps.billing.services.invoices import BillOutcome, invoices_bill
from apps.billing.services.pricing import NoRateCardVersion, PeriodBill, period_bill
from apps.catalog.errors import CatalogChanged
from apps.catalog.models import RateCardVersion
from apps.catalog.selectors import rate_card_versions
from apps.core.jobs import job_enqueue_on_commit
from apps.core.periods import BillingPeriod, subscription_periods

# A month has at least 28 days: a subscription billed through less than that ago has no period
# that can have ended since.
_SHORTEST_PERIOD = timedelta(days=28)


@dataclass
class RunReport:
    subscriptions: int = 0
    drafted: int = 0
    refreshed: int = 0
    finalized: int = 0
    waiting: int = 0  # due, but their usage is not all rolled up yet (see invoices_bill)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def periods_ended(subscription: Subscription, as_of: datetime) -> list[BillingPeriod]:
    """The periods of ``subscription`` not yet finalized that ended by ``as_of``: from where
    it is billed through (or its start), cut at its end when it was canceled."""
    start = subscription.billed_through or subscription.started_at
    until = as_of if subscription.ends_at is None else min(as_of, subscription.ends_at)
    periods = []
    for period in subscription_periods(
        started_at=start,
        until=until,
        timezone_name=subscription.tenant.timezone,
        interval=subscription.plan.interval,
    ):
        end = period.end
        if subscription.ends_at is not None and subscription.ends_at < end:
            end = subscription.ends_at
        if end > as_of:
            break
        periods.append(BillingPeriod(period.start, end))
    return periods


def _due(as_of: datetime) -> Q:
    """Subscriptions that may have a period ended and not finalized by ``as_of``."""
    started = Q(started_at__lt=as_of)
    unbilled = Q(billed_through__isnull=True) | Q(billed_through__lte=as_of - _SHORTEST_PERIOD)
    not_over = Q(ends_at__isnull=True) | Q(billed_through__isnull=True)
    return started & unbilled & (not_over | Q(billed_through__lt=F("ends_at")))


class _Versions:
    """Every version of the rate cards a chunk meets, loaded once per rate card."""

    def __init__(self) -> None:
        self.by_card: dict[Any, list[RateCardVersion]] = {}

    def load(self, card_ids: set[Any]) -> dict[Any, list[RateCardVersion]]:
        missing = [c for c in card_ids if c not in self.by_card]
        if missing:
            for card in missing:
                self.by_card[card] = []
            for version in rate_card_versions(rate_card_ids=missing):
                self.by_card[version.rate_card_id].append(version)
        return self.by_card


def _chunk_bills(
    subscriptions: list[Subscription], as_of: datetime, versions: _Versions, report: RunReport
) -> list[PeriodBill]:
    cards = {s.plan.rate_card_id for s in subscriptions} | {
        c.plan.rate_card_id for s in subscriptions for c in s.plan_changes.all()
    }
    by_card = versions.load(cards)
    bills: list[PeriodBill] = []
    for subscription in subscriptions:
        changes = list(subscription.plan_changes.all())
        try:
            bills.extend(
                period_bill(
                    subscription=subscription, period=period, changes=changes, versions=by_card
                )
                for period in periods_ended(subscription, as_of)
            )
        except NoRateCardVersion as exc:
            report.problems.append(
                f"subscription {subscription.id} ({subscription.tenant.external_id}): no "
                f"version of the plan's rate card was in effect on {exc.args[0].isoformat()}"
            )
    return bills


def billing_run(
    *,
    as_of: datetime | None = None,
    chunk: int = 500,
    subscription_ids: list[UUID] | None = None,
    grace: timedelta | None = None,
) -> RunReport:
    """Draft, refresh and finalize every due period as of ``as_of`` (default now). Safe to run
    twice or concurrently: the result is one invoice per subscription and period."""
    as_of = as_of or timezone.now()
    report = RunReport()
    after: UUID | None = None
    retries = 0
    closed: set[str] = set()  # the months (YYYY-MM) whose invoices this run finalized
    while True:
        resume = after
        try:
            with transaction.atomic(durable=True):
                subscriptions, outcome = _chunk_run(
                    after=after, chunk=chunk, as_of=as_of, grace=grace,
                    subscription_ids=subscription_ids, report=report,
                )  # fmt: skip
        except CatalogChanged as exc:  # prices changed mid-chunk: price the chunk again
            retries += 1
            if retries > _RETRIES:
                report.problems.append(f"{exc.message}; gave up after {_RETRIES} tries")
                return report
            after = resume
            continue
        if not subscriptions:
            break
        after = subscriptions[-1].id
        report.subscriptions += len(subscriptions)
        report.drafted += len(outcome.drafted)
        report.refreshed += len(outcome.refreshed)
        report.finalized += len(outcome.finalized)
        report.waiting += len(outcome.waiting)
        closed |= {
            f"{i.period_start.astimezone(ZoneInfo(i.tenant.timezone)):%Y-%m}"
            for i in outcome.finalized
        }
    for month in sorted(closed):  # a period close: look for leakage in the month just closed
        job_enqueue_on_commit(
            name="assurance.leakage_scan",
            kwargs={"period": month},
            debounce_key=f"assurance.leakage_scan:{month}",
            debounce_seconds=300,
        )
    return report


_RETRIES = 3


def _chunk_run(
    *,
    after: UUID | None,
    chunk: int,
    as_of: datetime,
    grace: timedelta | None,
    subscription_ids: list[UUID] | None,
    report: RunReport,
) -> tuple[list[Subscription], BillOutcome]:
    """Lock, price and write one chunk of due subscriptions; inside the caller's transaction."""
    due = (
        Subscription.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(_due(as_of))
        .select_related("tenant", "plan")
        .prefetch_related(
            Prefetch("plan_changes", queryset=PlanChange.objects.select_related("plan"))
        )
        .order_by("id")
    )
    if subscription_ids is not None:
        due = due.filter(id__in=subscription_ids)
    if after is not None:
        due = due.filter(id__gt=after)
    subscriptions = list(due[:chunk])
    if not subscriptions:
        return [], BillOutcome()
    bills = _chunk_bills(subscriptions, as_of, _Versions(), report)
    return subscriptions, invoices_bill(bills=bills, as_of=as_of, grace=grace)
