"""Low-credit alerts: a grant 80 % consumed alerts once, with its projected depletion date at
the last 30 days' burn rate (worked out by hand), and the portal's credit status."""

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
import time_machine

from apps.alerts.models import CreditAlert
from apps.alerts.selectors import credit_status, depletion_date
from apps.alerts.services.budgets.evaluate import budgets_evaluate
from apps.alerts.services.credit_alerts import credit_alerts_run
from apps.billing.services.credits import credit_grant_issue
from apps.billing.services.runs import billing_run
from apps.core.models import OutboxEvent
from tests.billing.billing_setup import catalog_load, subscribe

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def grant(tenant, amount: str, reason: str = "welcome", expires_at=None):
    return credit_grant_issue(
        tenant_id=tenant.id,
        currency="USD",
        amount=D(amount),
        effective_at=datetime(2026, 9, 1, tzinfo=UTC),
        expires_at=expires_at,
        reason=reason,
    )


@pytest.fixture
def acme(make_tenant, clock):
    catalog_load()
    tenant = make_tenant("acme")
    subscribe(tenant, "growth", datetime(2026, 10, 1, tzinfo=UTC))  # 99.00 a month
    return tenant


def bill_october() -> None:
    with time_machine.travel(datetime(2026, 11, 1, 2, 0, tzinfo=UTC), tick=False):
        billing_run()  # October's 99.00 paid from credits, on 1 November


def test_a_grant_past_80_percent_alerts_once_with_its_depletion_date(acme):
    pack = grant(acme, "110")
    bill_october()  # 99 of 110 spent: 90 %
    assert budgets_evaluate().credit_alerts == 1
    assert budgets_evaluate().credit_alerts == 0  # once only
    alert = CreditAlert.objects.get(grant=pack)
    # 99 / 110 = 90.00 %; 11 left; burn 99 over the last 30 days = 3.30 a day;
    # 11 / 3.30 = 3.33 days, rounded up to 4: 20 + 4 = 24 November
    assert (alert.threshold, alert.consumed_percent, alert.remaining_amount) == (
        80,
        D("90.00"),
        D("11"),
    )
    assert alert.projected_depletion_on == date(2026, 11, 24)
    [event] = OutboxEvent.objects.filter(topic="credits.low")
    assert event.tenant_id == acme.id
    assert event.data["tenant"] == "acme"
    assert event.data["grant"]["consumed_percent"] == "90.00"
    assert event.data["grant"]["remaining"] == "11.0000"
    assert event.data["grant"]["projected_depletion_on"] == "2026-11-24"


def test_under_80_percent_no_alert_and_the_status_shows_it(acme):
    big = grant(acme, "200")
    bill_october()  # 99 of 200: 49.50 %
    assert credit_alerts_run(as_of=NOW) == 0
    [status] = credit_status(tenant_id=acme.id)
    assert status.grant == big
    assert (status.consumed_percent, status.remaining) == (D("49.50"), D("101"))
    # 101 / 3.30 = 30.6 days, rounded up to 31: 20 November + 31 = 21 December
    assert status.projected_depletion_on == date(2026, 12, 21)


def test_no_burn_in_30_days_means_no_depletion_date(acme):
    pack = grant(acme, "110")
    bill_october()
    with time_machine.travel(datetime(2026, 12, 5, tzinfo=UTC), tick=False):
        # The 1 November debit is 34 days old; December's invoice is not final yet
        credit_alerts_run(as_of=datetime(2026, 12, 5, tzinfo=UTC))
    assert CreditAlert.objects.get(grant=pack).projected_depletion_on is None


def test_expired_grants_do_not_alert(acme):
    grant(acme, "100", expires_at=datetime(2026, 11, 10, tzinfo=UTC))
    bill_october()  # 99 of 100 spent, then the grant expired on 10 November
    assert credit_alerts_run(as_of=NOW) == 0
    assert credit_status(tenant_id=acme.id) == []


def test_the_depletion_arithmetic():
    today = date(2026, 11, 20)
    # 10 at 2.5 a day: exactly 4 days; 10.01: a fifth, part day
    assert depletion_date(remaining=D("10"), burn_per_day=D("2.5"), today=today) == date(
        2026, 11, 24
    )
    assert depletion_date(remaining=D("10.01"), burn_per_day=D("2.5"), today=today) == date(
        2026, 11, 25
    )
    assert depletion_date(remaining=D("0"), burn_per_day=D("0"), today=today) == today
    assert depletion_date(remaining=D("5"), burn_per_day=D("0"), today=today) is None
