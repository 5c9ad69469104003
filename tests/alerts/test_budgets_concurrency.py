"""Evaluations running at once (two beat ticks overlapping, a budget change's own run) fire
each crossing once: the alert's unique constraint decides, and only the run that inserted an
alert publishes its event. PostgreSQL only: real concurrent transactions."""

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from django.core import mail

from apps.alerts.models import BudgetAlert, BudgetPeriod, EmailNotification
from apps.alerts.services.budgets.evaluate import budgets_evaluate
from apps.alerts.services.budgets.manage import budget_create
from tests.alerts.test_budgets import spend
from tests.concurrency import run_together

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_evaluations_fire_each_crossing_once(make_tenant, clock):
    acme = make_tenant("acme")
    budget = budget_create(
        name="acme spend", scope="tenant", tenant=acme, measure="cost", amount=D("100"),
        notify_emails=["finops@operator.example"],
    )  # fmt: skip
    spend("95.00")  # 95 %: past 70 and 90

    run_together(*[budgets_evaluate for _ in range(4)])

    crossed = BudgetAlert.objects.filter(budget=budget).values_list("threshold", flat=True)
    assert sorted(crossed) == [70, 90]
    assert BudgetPeriod.objects.get(budget=budget).crossed == [70, 90]
    # one event each (dispatched after commit): one email each
    assert EmailNotification.objects.filter(topic="budget.threshold_crossed").count() == 2
    assert len(mail.outbox) == 2
