"""Email notifications: budget, credit and invoice events become plain-text emails through
Django's email backend, once per event and recipient however often the sender runs; a failed
send is recorded and tried again; webhooks still get the same events."""

import smtplib
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
import time_machine
from django.core import mail

from apps.alerts.models import EmailNotification, WebhookMessage
from apps.alerts.services import notifications
from apps.alerts.services.budgets.evaluate import budgets_evaluate
from apps.alerts.services.budgets.manage import budget_create
from apps.alerts.services.notifications import email_notifications_queue, email_notifications_send
from apps.alerts.services.webhooks import outbox_dispatch, webhook_endpoint_create
from apps.billing.services.credits import credit_grant_issue
from apps.billing.services.runs import billing_run
from apps.core.models import OutboxEvent
from tests.alerts.test_budgets import spend
from tests.billing.billing_setup import catalog_load, subscribe

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def acme(make_tenant, clock):
    return make_tenant("acme", billing_email="ap@acme.example")


def crossing(tenant, **kwargs):
    """A budget of 100 USD of acme's cost, spent to 75 % and evaluated: one crossing of 70."""
    kwargs.setdefault("scope", "tenant")
    budget = budget_create(
        name="acme spend", measure="cost", amount=D("100"), tenant=tenant, **kwargs
    )
    spend("75.00")
    budgets_evaluate()
    return budget


def test_a_crossing_mails_the_budget_list_and_the_tenant_once(acme):
    crossing(acme, notify_emails=["finops@operator.example", "ap@acme.example"])
    outbox_dispatch()
    assert email_notifications_send() == 2
    assert email_notifications_send() == 0  # sent already
    assert sorted(m.to[0] for m in mail.outbox) == ["ap@acme.example", "finops@operator.example"]
    message = mail.outbox[0]
    assert message.subject == 'Budget "acme spend" reached 70 % (75.00 % used)'
    assert "So far:    75.00 USD of 100.00 USD (75.00 %)" in message.body
    assert "feature chat: 75.00 USD (100.00 %)" in message.body
    assert "&quot;" not in message.body and "&#x27;" not in message.body  # plain text
    assert message.from_email == "billing@example.com"


def test_queueing_an_event_twice_mails_once(acme):
    crossing(acme)
    events = list(OutboxEvent.objects.filter(topic="budget.threshold_crossed"))
    assert email_notifications_queue(events=events) == 1
    email_notifications_queue(events=events)
    outbox_dispatch()  # the same events again, as dispatch claims them
    assert EmailNotification.objects.count() == 1
    email_notifications_send()
    assert [m.to for m in mail.outbox] == [["ap@acme.example"]]


def test_a_failed_send_is_recorded_and_tried_again(acme, monkeypatch):
    crossing(acme)
    outbox_dispatch()

    def down(*args, **kwargs):
        raise smtplib.SMTPServerDisconnected("connection unexpectedly closed")

    monkeypatch.setattr(notifications, "send_mail", down)
    assert email_notifications_send() == 0
    row = EmailNotification.objects.get()
    assert (row.sent_at, row.attempts) == (None, 1)
    assert row.error == "SMTPServerDisconnected: connection unexpectedly closed"
    monkeypatch.undo()
    assert email_notifications_send() == 1
    row.refresh_from_db()
    assert (row.sent_at, row.attempts, row.error) == (NOW, 2, "")
    assert len(mail.outbox) == 1


def test_a_send_that_keeps_failing_stops_after_the_last_try(acme, monkeypatch):
    crossing(acme)
    outbox_dispatch()
    monkeypatch.setattr(notifications, "send_mail", lambda *a, **k: (_ for _ in ()).throw(OSError))
    for _ in range(notifications.MAX_ATTEMPTS + 2):
        email_notifications_send()
    assert EmailNotification.objects.get().attempts == notifications.MAX_ATTEMPTS


def test_webhooks_still_get_the_events_emails_are_made_of(acme):
    webhook_endpoint_create(
        url="https://hooks.example.com/in", tenant_id=None, event_types=["budget.threshold_crossed"]
    )
    crossing(acme)
    assert outbox_dispatch() == 1
    assert WebhookMessage.objects.get().event_type == "budget.threshold_crossed"
    assert EmailNotification.objects.get().topic == "budget.threshold_crossed"
    assert not OutboxEvent.objects.exists()


def test_no_recipient_no_email(make_tenant, clock):
    quiet = make_tenant("acme")  # no billing email
    crossing(quiet, scope="feature", scope_value="chat")  # and no list
    outbox_dispatch()
    assert not EmailNotification.objects.exists()


def test_an_operator_wide_budget_mails_only_its_list(acme):
    budget_create(
        name="chat", scope="feature", scope_value="chat", measure="cost", amount=D("100"),
        notify_emails=["finops@operator.example"],
    )  # fmt: skip
    spend("75.00")
    budgets_evaluate()
    outbox_dispatch()
    assert list(EmailNotification.objects.values_list("to", flat=True)) == [
        "finops@operator.example"
    ]


def test_a_resolution_mails_too(acme):
    crossing(acme)
    from apps.costs.models import CostRollup

    CostRollup.objects.update(cost=D("50"))
    budgets_evaluate()
    outbox_dispatch()
    email_notifications_send()
    assert sorted(m.subject for m in mail.outbox) == [
        'Budget "acme spend" back below 70 % (50.00 % used)',
        'Budget "acme spend" reached 70 % (75.00 % used)',
    ]


def test_invoices_and_low_credits_mail_the_billing_email(acme):
    catalog_load()
    subscribe(acme, "growth", datetime(2026, 10, 1, tzinfo=UTC))  # 99.00 a month
    credit_grant_issue(
        tenant_id=acme.id, currency="USD", amount=D("110"),
        effective_at=datetime(2026, 9, 1, tzinfo=UTC), expires_at=None, reason="welcome pack",
    )  # fmt: skip
    with time_machine.travel(datetime(2026, 11, 1, 2, 0, tzinfo=UTC), tick=False):
        billing_run()  # October finalized, paid from credits: 99 of 110 used
    budgets_evaluate()  # 90 % of the grant: credits.low
    outbox_dispatch()
    email_notifications_send()
    subjects = {m.subject: m for m in mail.outbox}
    invoice = next(m for s, m in subjects.items() if s.startswith("Invoice "))
    assert invoice.to == ["ap@acme.example"]
    # 99.00 less 99.00 of credits: nothing to pay
    assert invoice.subject.endswith("from Percall demo operator: 0.00 USD")
    low = subjects["Your credits are 90.00 % used"]
    assert low.to == ["ap@acme.example"]
    assert "Remaining: 11.00 USD" in low.body
    # 11 left at 99 / 30 = 3.30 a day: 3.33 days, rounded up to 4 after 20 November
    assert "they run out on 2026-11-24" in low.body


def test_an_email_that_cannot_render_never_holds_up_the_webhooks(acme, monkeypatch):
    webhook_endpoint_create(url="https://hooks.example.com/in", tenant_id=None, event_types=[])
    crossing(acme)

    def broken(event):
        raise ValueError("template error")

    monkeypatch.setattr(notifications, "email_render", broken)
    assert outbox_dispatch() == 1
    assert WebhookMessage.objects.get().event_type == "budget.threshold_crossed"
    assert not EmailNotification.objects.exists()
