"""Creating, changing and deactivating budgets, with every rule a budget must satisfy checked
before anything is stored (the error names the field and the bad value)."""

from collections.abc import Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from apps.alerts.errors import BudgetInvalid, BudgetNotFound
from apps.alerts.models import THRESHOLDS_DEFAULT, Budget
from apps.alerts.services.limits import limits_refresh_on_commit
from apps.core.jobs import job_enqueue_on_commit
from apps.core.money import currency_is_known
from apps.metering.models import Meter
from apps.tenants.models import CostCenter, Tenant

EVALUATE_TASK = "alerts.budgets_evaluate"
MAX_THRESHOLDS = 10
MAX_EMAILS = 20
# Measures other than cost are a tenant's own figures (its invoices, meters, credits).
_TENANT_ONLY = (
    Budget.Measure.BILLED_AMOUNT,
    Budget.Measure.USAGE,
    Budget.Measure.CREDIT_CONSUMPTION,
)
_NAMED_SCOPES = (Budget.Scope.FEATURE, Budget.Scope.WORKFLOW, Budget.Scope.ENDPOINT)
# What PATCH may change; the rest defines what is measured, and changing it would make the
# budget's past periods and alerts describe something else: create a new budget instead.
MUTABLE = ("name", "amount", "thresholds", "action", "notify_emails")


def _choice(value: str, choices: Any, field: str) -> str:
    if value not in choices.values:
        raise BudgetInvalid(
            f"{field}: {value!r} is not one of {', '.join(choices.values)}", field=field
        )
    return value


def _amount_check(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise BudgetInvalid(f"amount: {value!r} is not a number", field="amount") from exc
    if not amount.is_finite() or amount <= 0:
        raise BudgetInvalid(f"amount: {value!r} must be a positive number", field="amount")
    if amount.as_tuple().exponent < -12 or amount.adjusted() >= 26:  # type: ignore[operator]
        raise BudgetInvalid(
            f"amount: {value!r} has more than 12 decimal places or 26 digits", field="amount"
        )
    return amount


def _thresholds_check(values: Sequence[Any] | None) -> list[int]:
    if values is None:
        return list(THRESHOLDS_DEFAULT)
    if not isinstance(values, list | tuple) or not values or len(values) > MAX_THRESHOLDS:
        raise BudgetInvalid(
            f"thresholds: give 1 to {MAX_THRESHOLDS} percentages, ascending", field="thresholds"
        )
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 1000:
            raise BudgetInvalid(
                f"thresholds[{index}]: {value!r} is not a whole percentage from 1 to 1000",
                field=f"thresholds[{index}]",
            )
        if index and value <= values[index - 1]:
            raise BudgetInvalid(
                f"thresholds[{index}]: {value} does not come after {values[index - 1]}; "
                "thresholds ascend strictly",
                field=f"thresholds[{index}]",
            )
    return list(values)


def _emails_check(values: Sequence[Any]) -> list[str]:
    if not isinstance(values, list | tuple) or len(values) > MAX_EMAILS:
        raise BudgetInvalid(
            f"notify_emails: give at most {MAX_EMAILS} addresses", field="notify_emails"
        )
    for index, value in enumerate(values):
        try:
            validate_email(value)
        except ValidationError as exc:
            raise BudgetInvalid(
                f"notify_emails[{index}]: {value!r} is not an email address",
                field=f"notify_emails[{index}]",
            ) from exc
    return sorted(set(values), key=list(values).index)


def _scope_check(budget: Budget) -> None:
    scope = budget.scope
    if scope == Budget.Scope.TENANT and budget.tenant_id is None:
        raise BudgetInvalid("tenant: required for a tenant budget", field="tenant")
    if scope == Budget.Scope.COST_CENTER:
        if budget.cost_center_id is None:
            raise BudgetInvalid(
                "cost_center: required for a cost_center budget", field="cost_center"
            )
        if budget.tenant_id is not None:
            raise BudgetInvalid(
                "tenant: a cost center's cost spans tenants; leave tenant out", field="tenant"
            )
        if budget.action != Budget.Action.NOTIFY:
            # Which tenants' calls map to a cost center is known only per rollup row, not
            # cheaply per gateway call: cost-center budgets alert, they do not limit.
            raise BudgetInvalid(
                f"action: {budget.action!r}; cost_center budgets notify only", field="action"
            )
    elif budget.cost_center_id is not None:
        raise BudgetInvalid(
            f"cost_center: only for a cost_center budget, not {scope}", field="cost_center"
        )
    if scope in _NAMED_SCOPES and not budget.scope_value.strip():
        raise BudgetInvalid(
            f"scope_value: required: the {scope} the budget is for", field="scope_value"
        )
    if scope not in _NAMED_SCOPES and budget.scope_value:
        raise BudgetInvalid(
            f"scope_value: only for feature, workflow or endpoint budgets, not {scope}",
            field="scope_value",
        )


def _measure_check(budget: Budget) -> None:
    measure = budget.measure
    if measure in _TENANT_ONLY and budget.scope != Budget.Scope.TENANT:
        raise BudgetInvalid(
            f"measure: {measure} is measured per tenant; it needs scope tenant, not {budget.scope}",
            field="measure",
        )
    if measure == Budget.Measure.USAGE:
        meter = budget.meter
        if meter is None:
            raise BudgetInvalid("meter: required for a usage budget", field="meter")
        if meter.aggregation not in ("count", "sum"):
            raise BudgetInvalid(
                f"meter: {meter.code!r} is a {meter.aggregation} meter; usage "
                "budgets need a count or sum meter (its units add up over a period)",
                field="meter",
            )
        if budget.currency:
            raise BudgetInvalid(
                "currency: a usage budget counts units, not money", field="currency"
            )
        return
    if budget.meter_id is not None:
        raise BudgetInvalid("meter: only for a usage budget", field="meter")
    expected = (
        settings.PERCALL_OPERATOR_CURRENCY
        if measure == Budget.Measure.COST
        else budget.tenant.currency  # type: ignore[union-attr]
    )
    if not budget.currency:
        budget.currency = expected
    if not currency_is_known(budget.currency):
        raise BudgetInvalid(
            f"currency: {budget.currency!r} is not an ISO 4217 code", field="currency"
        )
    if budget.currency != expected:
        where = (
            "the operator currency" if measure == Budget.Measure.COST else "the tenant's currency"
        )
        raise BudgetInvalid(
            f"currency: {budget.currency!r}; {measure} is measured in {where}, {expected}",
            field="currency",
        )


def _period_check(budget: Budget) -> None:
    if budget.period == Budget.Period.MONTHLY:
        if budget.period_start or budget.period_end:
            raise BudgetInvalid(
                "period_start: only for a custom period; monthly budgets follow the calendar",
                field="period_start",
            )
        return
    if budget.period_start is None:
        raise BudgetInvalid("period_start: required for a custom period", field="period_start")
    if budget.period_end is None or budget.period_end <= budget.period_start:
        raise BudgetInvalid(
            f"period_end: {budget.period_end} must be after period_start {budget.period_start}",
            field="period_end",
        )
    if (budget.period_end - budget.period_start).days > 366:
        raise BudgetInvalid(
            "period_end: a custom period lasts at most 366 days", field="period_end"
        )


def budget_check(budget: Budget) -> None:
    """Every rule a budget must meet; raises ``BudgetInvalid`` naming the field."""
    if not budget.name.strip():
        raise BudgetInvalid("name: required", field="name")
    _choice(budget.scope, Budget.Scope, "scope")
    _choice(budget.measure, Budget.Measure, "measure")
    _choice(budget.period, Budget.Period, "period")
    _choice(budget.action, Budget.Action, "action")
    budget.amount = _amount_check(budget.amount)
    budget.thresholds = _thresholds_check(budget.thresholds)
    budget.notify_emails = _emails_check(budget.notify_emails)
    _scope_check(budget)
    _measure_check(budget)
    _period_check(budget)


def _tenants_concerned(budget: Budget) -> tuple[set[UUID], bool]:
    if budget.tenant_id is not None:
        return {budget.tenant_id}, False
    return set(), budget.scope in _NAMED_SCOPES  # operator-wide: every tenant's answer


@transaction.atomic
def budget_create(
    *,
    name: str,
    scope: str,
    measure: str,
    amount: Decimal | str,
    tenant: Tenant | None = None,
    cost_center: CostCenter | None = None,
    scope_value: str = "",
    meter: Meter | None = None,
    currency: str = "",
    period: str = Budget.Period.MONTHLY,
    period_start: date | None = None,
    period_end: date | None = None,
    thresholds: Sequence[int] | None = None,
    action: str = Budget.Action.NOTIFY,
    notify_emails: Sequence[str] = (),
) -> Budget:
    """A new active budget, evaluated right after it commits (and every few minutes on)."""
    budget = Budget(
        name=name,
        scope=scope,
        measure=measure,
        amount=amount,
        tenant=tenant,
        cost_center=cost_center,
        scope_value=scope_value.strip(),
        meter=meter,
        currency=currency.upper(),
        period=period,
        period_start=period_start,
        period_end=period_end,
        thresholds=list(thresholds) if thresholds is not None else None,
        action=action,
        notify_emails=list(notify_emails),
    )
    budget_check(budget)
    budget.full_clean()
    budget.save()
    job_enqueue_on_commit(name=EVALUATE_TASK, kwargs={"budget_ids": [str(budget.id)]})
    return budget


def _locked(budget_id: UUID) -> Budget:
    found = (
        Budget.objects.select_for_update(of=("self",))
        .select_related("tenant", "meter", "cost_center")
        .filter(id=budget_id)
        .first()
    )
    if found is None:
        raise BudgetNotFound(f"budget {budget_id} not found", field="id")
    return found


@transaction.atomic
def budget_update(*, budget_id: UUID, changes: dict[str, Any]) -> Budget:
    """Change the name, amount, thresholds, action or recipients; the budget is evaluated
    again right after (crossings follow the new figures; past alerts stay as they were)."""
    budget = _locked(budget_id)
    for field in changes:
        if field not in MUTABLE:
            raise BudgetInvalid(
                f"{field}: cannot be changed (it defines what is measured); create a new "
                "budget and deactivate this one",
                field=field,
            )
    for field, value in changes.items():
        setattr(budget, field, value)
    budget_check(budget)
    budget.full_clean()
    budget.save()
    job_enqueue_on_commit(name=EVALUATE_TASK, kwargs={"budget_ids": [str(budget.id)]})
    tenant_ids, everyone = _tenants_concerned(budget)
    limits_refresh_on_commit(tenant_ids=tenant_ids, everyone=everyone)
    return budget


@transaction.atomic
def budget_deactivate(*, budget_id: UUID) -> Budget:
    """Stop evaluating the budget; it stops limiting at once. Its periods and alerts stay."""
    budget = _locked(budget_id)
    if budget.active:
        budget.active = False
        budget.save(update_fields=["active", "updated_at"])
    tenant_ids, everyone = _tenants_concerned(budget)
    limits_refresh_on_commit(tenant_ids=tenant_ids, everyone=everyone)
    return budget
