"""Thin Celery tasks over the billing services. Each may run twice or concurrently."""

from datetime import datetime

from celery import shared_task
from django.conf import settings

from apps.billing.services.pdf import invoice_pdf_render
from apps.billing.services.pdf_sweep import invoice_pdfs_missing_queue
from apps.billing.services.retention import events_retention_purge
from apps.billing.services.runs import billing_run


@shared_task(name="billing.billing_run", time_limit=1800, soft_time_limit=1740)
def billing_run_task(*, as_of: str | None = None) -> dict:
    report = billing_run(
        as_of=datetime.fromisoformat(as_of) if as_of else None,
        chunk=settings.PERCALL_BILLING_RUN_CHUNK,
    )
    return report.as_dict()


@shared_task(
    name="billing.invoice_render_pdf",
    time_limit=120,
    soft_time_limit=110,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
)
def invoice_render_pdf(*, invoice_id: str) -> str:
    """Render (or keep, when its content is unchanged) the invoice's stored PDF."""
    return invoice_pdf_render(invoice_id=invoice_id)


@shared_task(
    name="billing.events_retention_purge", bind=True, time_limit=3600, soft_time_limit=3540
)
def events_retention_purge_task(self) -> dict:
    """Delete expired raw events that are rolled up and billed; a run that hits its row budget
    enqueues the next one. Safe to run twice or concurrently."""
    report = events_retention_purge()
    if report.more:
        self.apply_async()
    return report.as_dict()


@shared_task(name="billing.invoice_pdfs_missing", time_limit=300, soft_time_limit=270)
def invoice_pdfs_missing() -> int:
    """Queue the renders of issued invoices whose PDF kick was lost (a process killed after its
    commit, a broker blip, a render given up on)."""
    return invoice_pdfs_missing_queue()
