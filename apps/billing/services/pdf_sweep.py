"""The safety net for invoice PDFs: renders whose kick was lost.

A finalization or a status change queues the invoice's render after its transaction commits
(``job_enqueue_on_commit``). A process killed between that commit and the send, a broker
unreachable at that moment, or a render given up on (retries spent, hard time limit) leaves an
issued invoice whose stored PDF is missing or shows an older content hash, and nothing would
ever render it again (downloads render on the fly, but do not store). The beat sweep below
queues those renders again.
"""

from datetime import timedelta

from django.db.models import F
from django.utils import timezone

from apps.billing.models import Invoice
from apps.core.jobs import job_enqueue_on_commit

# Invoices issued this recently still have their own kick in flight: left to it.
_IN_FLIGHT = timedelta(minutes=10)


def invoice_pdfs_missing_queue(*, limit: int = 500) -> int:
    """Queue a render for up to ``limit`` issued invoices whose stored PDF does not show their
    current content, oldest issue first; returns how many were queued. Safe to run twice or
    concurrently: a render of an invoice already rendered finds it unchanged."""
    stale = (
        Invoice.objects.filter(number__isnull=False, issued_at__lt=timezone.now() - _IN_FLIGHT)
        .exclude(status=Invoice.Status.DRAFT)
        .exclude(pdf_hash=F("content_hash"))
        .order_by("issued_at", "id")
        .values_list("id", flat=True)[:limit]
    )
    ids = [str(i) for i in stale]
    for invoice_id in ids:
        job_enqueue_on_commit(name="billing.invoice_render_pdf", kwargs={"invoice_id": invoice_id})
    return len(ids)
