"""Email notifications for budget, credit and invoice events, through Django's email backend.

Outbox dispatch (``webhooks.outbox_dispatch``) hands every event it claims to
``email_notifications_queue`` in its own transaction, before the event leaves the outbox:
each email event becomes one ``EmailNotification`` per recipient, rendered then (subject and
plain-text body from ``templates/alerts/email/<topic>.txt``), unique per event and address,
so a re-run never queues twice. ``email_notifications_send`` then sends what is queued, one
row locked at a time, recording the send or the error; a failed one is tried again by the next
run, up to ``MAX_ATTEMPTS``. A crash between the SMTP answer and the commit can send one email
twice; nothing can lose one.

Recipients: a budget's ``notify_emails``, plus its tenant's billing email for a tenant
budget; the tenant's billing email for ``credits.low`` and ``invoice.finalized``; the
operator's ``PERCALL_OPERATOR_ALERT_EMAILS`` for ``pipeline.lagging`` and ``.recovered``.
"""

import logging
import smtplib
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from apps.alerts.models import Budget, EmailNotification
from apps.core.jobs import job_enqueue_on_commit
from apps.core.models import OutboxEvent
from apps.core.money import currency_is_known, quantize
from apps.tenants.models import Tenant

logger = logging.getLogger(__name__)
EMAIL_TOPICS = (
    "budget.threshold_crossed",
    "budget.resolved",
    "credits.low",
    "invoice.finalized",
    "pipeline.lagging",
    "pipeline.recovered",
)
MAX_ATTEMPTS = 8  # at the 5-minute sweep: about 40 minutes of an SMTP outage
SEND_TASK = "alerts.email_notifications_send"


def _budget_recipients(events: list[OutboxEvent]) -> dict[str, list[str]]:
    ids = {str(e.data.get("budget", {}).get("id")) for e in events if e.topic.startswith("budget.")}
    budgets = Budget.objects.filter(id__in=[i for i in ids if i and i != "None"])
    out: dict[str, list[str]] = {}
    for budget in budgets.select_related("tenant"):
        to = list(budget.notify_emails)
        if budget.scope == Budget.Scope.TENANT and budget.tenant and budget.tenant.billing_email:
            to.append(budget.tenant.billing_email)
        out[str(budget.id)] = to
    return out


def _recipients(events: list[OutboxEvent]) -> dict[int, list[str]]:
    budgets = _budget_recipients(events)
    tenant_ids = {e.tenant_id for e in events if e.tenant_id}
    billing = dict(Tenant.objects.filter(id__in=tenant_ids).values_list("id", "billing_email"))
    out: dict[int, list[str]] = {}
    for event in events:
        if event.topic.startswith("budget."):
            to = budgets.get(str(event.data.get("budget", {}).get("id")), [])
        elif event.topic.startswith("pipeline."):
            to = list(settings.PERCALL_OPERATOR_ALERT_EMAILS)
        else:
            to = [billing.get(event.tenant_id) or ""] if event.tenant_id else []
        unique: dict[str, str] = {}
        for address in to:
            if address:
                unique.setdefault(address.strip().lower(), address.strip())
        out[event.id] = list(unique.values())
    return out


def _figure(value: Any, currency: str | None) -> str:
    """A stored figure for people: money to the currency's minor unit, units trimmed."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return "-" if value is None else str(value)
    if currency and currency_is_known(currency):
        return f"{quantize(number, currency):,} {currency}"
    text = f"{number.quantize(Decimal('0.0001')):,}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _context(event: OutboxEvent) -> dict[str, Any]:
    data = event.data
    context: dict[str, Any] = {"data": data, "operator": settings.PERCALL_OPERATOR_NAME}
    if event.topic.startswith("budget."):
        budget = data.get("budget", {})
        currency = budget.get("currency")
        context |= {
            "budget": budget,
            "amount": _figure(budget.get("amount"), currency),
            "measured": _figure(data.get("measured"), currency),
            "forecast": _figure(data.get("forecast"), currency),
            "drivers": [
                {**d, "shown": _figure(d.get("amount"), currency)} for d in data.get("drivers", [])
            ],
        }
    elif event.topic == "credits.low":
        grant = data.get("grant", {})
        context |= {
            "grant": grant,
            "remaining": _figure(grant.get("remaining"), grant.get("currency")),
            "granted": _figure(grant.get("amount"), grant.get("currency")),
        }
    elif event.topic == "invoice.finalized":
        invoice = data.get("invoice", {})
        context |= {
            "invoice": invoice,
            "total": _figure(invoice.get("total"), invoice.get("currency")),
        }
    return context


def email_render(event: OutboxEvent) -> tuple[str, str]:
    """(subject, body): the template's first line is ``Subject: ...``, the rest the body."""
    text = render_to_string(f"alerts/email/{event.topic}.txt", _context(event))
    first, _, rest = text.strip().partition("\n")
    subject = " ".join(first.removeprefix("Subject:").split())[:300]
    return subject, rest.strip() + "\n"


def email_notifications_queue(*, events: Sequence[OutboxEvent]) -> int:
    """Queue the emails of ``events`` (inside the dispatch transaction that claims them);
    returns the rows written. A second queueing of the same event writes nothing."""
    wanted = [e for e in events if e.topic in EMAIL_TOPICS]
    if not wanted:
        return 0
    recipients = _recipients(wanted)
    rows: list[EmailNotification] = []
    for event in wanted:
        if not recipients[event.id]:
            continue
        try:
            subject, body = email_render(event)
        except Exception:  # a template that cannot render must not hold up the webhooks
            logger.exception("email for outbox event %s (%s) not rendered", event.id, event.topic)
            continue
        rows.extend(
            EmailNotification(
                outbox_event_id=event.id, topic=event.topic, to=to, subject=subject, body=body
            )
            for to in recipients[event.id]
        )
    if rows:
        EmailNotification.objects.bulk_create(rows, ignore_conflicts=True)
        job_enqueue_on_commit(name=SEND_TASK)
    return len(rows)


def _send_one(notification_id: int) -> bool:
    with transaction.atomic():
        rows = EmailNotification.objects.filter(
            id=notification_id, sent_at__isnull=True, attempts__lt=MAX_ATTEMPTS
        )
        if connection.vendor == "postgresql":
            rows = rows.select_for_update(skip_locked=True)
        row = rows.first()
        if row is None:  # sent meanwhile, or another sender holds it
            return False
        row.attempts += 1
        try:
            send_mail(row.subject, row.body, settings.DEFAULT_FROM_EMAIL, [row.to])
        except (smtplib.SMTPException, OSError) as exc:
            row.error = f"{type(exc).__name__}: {exc}"[:300]
        else:
            row.sent_at, row.error = timezone.now(), ""
        row.save(update_fields=["attempts", "sent_at", "error", "updated_at"])
        return row.sent_at is not None


def email_notifications_send(*, limit: int = 200) -> int:
    """Send every queued email not yet sent (oldest first); returns how many went."""
    due = (
        EmailNotification.objects.filter(sent_at__isnull=True, attempts__lt=MAX_ATTEMPTS)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    return sum(_send_one(notification_id) for notification_id in list(due))
