"""Subscriptions: start, change plan from the next period, cancel at period end or now."""

from datetime import datetime, timedelta
from uuid import UUID

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.billing.errors import BillingInvalid, SubscriptionNotFound
from apps.billing.models import PlanChange, Subscription
from apps.catalog.models import Plan
from apps.core.periods import calendar_period
from apps.tenants.models import Tenant


def subscriptions_for_update() -> QuerySet[Subscription]:
    """Subscriptions under their row lock: the first lock a billing write takes (then
    invoices, then credit grants)."""
    return Subscription.objects.select_for_update()


def _plan_usable(plan: Plan, tenant: Tenant, field: str = "plan") -> None:
    if not plan.active:
        raise BillingInvalid(f"{field}: {plan.code!r} takes no new subscriptions", field=field)
    if plan.currency != tenant.currency:
        raise BillingInvalid(
            f"{field}: {plan.code!r} bills in {plan.currency}; tenant {tenant.external_id!r} "
            f"pays in {tenant.currency}",
            field=field,
        )


@transaction.atomic
def subscription_create(*, tenant: Tenant, plan: Plan, start: datetime) -> Subscription:
    """Put a tenant on a plan from ``start`` (aware). One open subscription per tenant: a
    tenant already subscribed changes plan instead."""
    _plan_usable(plan, tenant)
    if start.tzinfo is None:
        raise BillingInvalid("start: needs an offset (e.g. 2026-11-01T00:00:00Z)", field="start")
    Tenant.objects.select_for_update().filter(id=tenant.id).first()  # one creator at a time
    open_ones = Subscription.objects.filter(tenant=tenant).exclude(ends_at__lte=start)
    if open_ones.exists():
        raise BillingInvalid(
            f"tenant: {tenant.external_id!r} already has an open subscription; change its plan "
            "or cancel it first",
            field="tenant",
        )
    subscription = Subscription(
        tenant=tenant,
        plan=plan,
        started_at=start,
        trial_ends_at=start + timedelta(days=plan.trial_days) if plan.trial_days else None,
    )
    subscription.full_clean()
    subscription.save()
    return subscription


def _current_period_end(subscription: Subscription, at: datetime) -> datetime:
    moment = max(at, subscription.started_at)
    return calendar_period(
        moment, timezone_name=subscription.tenant.timezone, interval=subscription.plan.interval
    ).end


@transaction.atomic
def subscription_plan_change(
    *, subscription_id: UUID, plan: Plan, at: datetime | None = None
) -> PlanChange:
    """Move to ``plan`` from the start of the next period after ``at`` (default now)."""
    subscription = (
        subscriptions_for_update()
        .select_related("tenant", "plan")
        .filter(id=subscription_id)
        .first()
    )
    if subscription is None:
        raise SubscriptionNotFound(f"subscription {subscription_id} not found")
    _plan_usable(plan, subscription.tenant)
    if plan.interval != subscription.plan.interval:
        raise BillingInvalid(
            f"plan: {plan.code!r} bills every {plan.interval}, this subscription every "
            f"{subscription.plan.interval}; cancel and subscribe again to change interval",
            field="plan",
        )
    effective_at = _current_period_end(subscription, at or timezone.now())
    if subscription.ends_at is not None and effective_at >= subscription.ends_at:
        raise BillingInvalid("plan: the subscription ends before the next period", field="plan")
    change = PlanChange(subscription=subscription, plan=plan, effective_at=effective_at)
    change.full_clean()
    change.save()
    return change


@transaction.atomic
def subscription_cancel(
    *, subscription_id: UUID, immediately: bool = False, at: datetime | None = None
) -> Subscription:
    """End a subscription at the end of the current period, or ``immediately`` (at ``at``,
    default now): the last period then ends there and its invoice bills the part used."""
    subscription = (
        subscriptions_for_update()
        .select_related("tenant", "plan")
        .filter(id=subscription_id)
        .first()
    )
    if subscription is None:
        raise SubscriptionNotFound(f"subscription {subscription_id} not found")
    now = at or timezone.now()
    if subscription.ends_at is not None and subscription.ends_at <= now:
        raise BillingInvalid("subscription: already ended", field="subscription")
    ends_at = (
        max(now, subscription.started_at) if immediately else _current_period_end(subscription, now)
    )
    if subscription.billed_through is not None and ends_at < subscription.billed_through:
        raise BillingInvalid(
            "subscription: that period is already invoiced; cancel at its end", field="at"
        )
    subscription.ends_at = ends_at
    subscription.canceled_at = now
    subscription.save(update_fields=["ends_at", "canceled_at", "updated_at"])
    return subscription


def plan_at(subscription: Subscription, changes: list[PlanChange], at: datetime) -> Plan:
    """The plan in effect at ``at``: the latest change from before it, else the first plan."""
    plan = subscription.plan
    for change in changes:
        if change.effective_at <= at:
            plan = change.plan
    return plan
