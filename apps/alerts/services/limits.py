"""The limits check the operator's gateway calls before letting a tenant's call through.

The answer for a tenant is kept in the Django cache (Redis in production) under one key, so a
hit is one cache get and no query; a miss rebuilds it from the current ``BudgetPeriod`` rows
(two queries). Evaluations and budget changes rebuild or drop the keys of the tenants they
concern after they commit; the TTL bounds staleness if that ever fails.

``decision`` is the tenant-wide answer: the strongest action (throttle over degrade) of the
tenant's own over-limit budgets of scope ``tenant``. Over-limit feature, workflow and
endpoint budgets (the tenant's, or operator-wide ones) are listed in ``limits`` with their own
action, for the gateway to apply to matching calls only: one over-spent feature must not
throttle a tenant's every call.
"""

import hashlib
import re
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.alerts.models import Budget, BudgetPeriod
from apps.alerts.services.budgets.periods import budget_zone
from apps.tenants.errors import TenantNotFound
from apps.tenants.models import Tenant

_STRENGTH = {"allow": 0, Budget.Action.DEGRADE: 1, Budget.Action.THROTTLE: 2}
_NAMED_SCOPES = (Budget.Scope.FEATURE, Budget.Scope.WORKFLOW, Budget.Scope.ENDPOINT)


_PLAIN_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def limits_cache_key(external_id: str) -> str:
    """The cache key of a tenant's answer. The id comes from the URL: one that is not plain
    ASCII (spaces, control or non-ASCII characters, too long for a key) is hashed, so every
    cache backend takes the key."""
    if not _PLAIN_ID.fullmatch(external_id):
        external_id = "sha256:" + hashlib.sha256(external_id.encode("utf-8", "replace")).hexdigest()
    return f"alerts:limits:{external_id}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def tenant_not_found(external_id: str) -> TenantNotFound:
    """The one answer for an unknown tenant and for another tenant's (same body)."""
    return TenantNotFound(f"tenant {external_id!r} not found", field="tenant")


def _answer(tenant: Tenant, now: datetime) -> dict[str, Any]:
    # Periods are dates in the budget's zone (a tenant budget: the tenant's), within a day
    # of UTC: narrow by a day each side here, exactly below.
    today = now.date()
    rows = (
        BudgetPeriod.objects.filter(
            budget__active=True,
            period_start__lte=today + timedelta(days=1),
            period_end__gte=today,
        )
        .filter(
            Q(budget__tenant_id=tenant.id)
            | Q(budget__tenant__isnull=True, budget__scope__in=_NAMED_SCOPES)
        )
        .select_related("budget__tenant")
        .order_by("budget__name", "budget__created_at")
    )
    decision, limits, evaluated = "allow", [], None
    for row in rows:
        budget = row.budget
        if not row.period_start <= now.astimezone(budget_zone(budget)).date() < row.period_end:
            continue
        evaluated = max(evaluated or row.evaluated_at, row.evaluated_at)
        # An action changed to notify stops limiting now, before the next evaluation.
        if not row.over_limit or budget.action == Budget.Action.NOTIFY:
            continue
        limits.append(
            {
                "budget": str(budget.id),
                "name": budget.name,
                "scope": budget.scope,
                "scope_value": budget.scope_value,
                "action": budget.action,
                "percent": str(row.percent),
            }
        )
        if budget.scope == Budget.Scope.TENANT and _STRENGTH[budget.action] > _STRENGTH[decision]:
            decision = budget.action
    return {
        "tenant": tenant.external_id,
        "decision": decision,
        "limits": limits,
        "evaluated_at": _iso(evaluated),
    }


def limits_build(*, external_id: str) -> dict[str, Any]:
    """Compute a tenant's answer from the budget periods and cache it."""
    tenant = Tenant.objects.filter(external_id=external_id).first()
    if tenant is None:
        raise tenant_not_found(external_id)
    answer = _answer(tenant, timezone.now())
    cache.set(limits_cache_key(external_id), answer, timeout=settings.PERCALL_LIMITS_CACHE_SECONDS)
    return answer


def limits_get(*, external_id: str) -> dict[str, Any]:
    """The tenant's limits answer: from the cache (no query), else built and cached."""
    cached = cache.get(limits_cache_key(external_id))
    if cached is not None:
        return dict(cached)
    return limits_build(external_id=external_id)


def limits_refresh(*, tenant_ids: set[UUID], everyone: bool = False) -> None:
    """Rebuild the cached answers of ``tenant_ids``; with ``everyone`` (an operator-wide
    budget changed state) drop every tenant's, to be rebuilt on the next check."""
    if everyone:
        names = list(Tenant.objects.values_list("external_id", flat=True))
        cache.delete_many([limits_cache_key(n) for n in names])
        return
    for name in Tenant.objects.filter(id__in=tenant_ids).values_list("external_id", flat=True):
        limits_build(external_id=name)


def limits_refresh_on_commit(*, tenant_ids: set[UUID], everyone: bool = False) -> None:
    """``limits_refresh`` once the current transaction commits (the state it reads is then
    visible); nothing when there is nothing to refresh."""
    if not tenant_ids and not everyone:
        return
    ids = set(tenant_ids)
    transaction.on_commit(lambda: limits_refresh(tenant_ids=ids, everyone=everyone))
