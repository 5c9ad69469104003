"""The PDF sweep: issued invoices whose render kick was lost get a render queued again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.billing.models import Invoice
from apps.billing.services import pdf_sweep
from apps.tenants.services.tenants import tenant_create

pytestmark = pytest.mark.django_db


def _invoice(tenant, n: int, *, status="finalized", pdf_hash="", issued_ago=timedelta(days=1)):
    issued = status != "draft"
    now = timezone.now()
    return Invoice.objects.create(
        tenant=tenant,
        status=status,
        number=f"PC-2026-{n:06d}" if issued else None,
        currency="USD",
        period_start=now - timedelta(days=40),
        period_end=now - timedelta(days=10),
        issued_at=now - issued_ago if issued else None,
        due_at=now + timedelta(days=20) if issued else None,
        content_hash=f"{n:064d}",
        pdf_hash=pdf_hash,
    )


def test_only_issued_invoices_whose_pdf_is_behind_their_content_are_queued(monkeypatch):
    # given invoices whose PDFs are: never rendered, stale, current, a draft's, just issued
    acme = tenant_create(external_id="acme", name="Acme", currency="USD")
    never = _invoice(acme, 1)
    stale = _invoice(acme, 2, status="void", pdf_hash="0" * 64)
    _invoice(acme, 3, pdf_hash=f"{3:064d}")
    _invoice(acme, 4, status="draft")
    _invoice(acme, 5, issued_ago=timedelta(minutes=1))  # its own kick is still in flight
    queued = []
    monkeypatch.setattr(
        pdf_sweep, "job_enqueue_on_commit", lambda **kw: queued.append((kw["name"], kw["kwargs"]))
    )

    # when the sweep runs
    count = pdf_sweep.invoice_pdfs_missing_queue()

    # then the never-rendered and the stale one get a render, oldest issue first
    assert count == 2
    assert sorted(queued, key=lambda q: q[1]["invoice_id"]) == sorted(
        [("billing.invoice_render_pdf", {"invoice_id": str(i.id)}) for i in (never, stale)],
        key=lambda q: q[1]["invoice_id"],
    )


def test_the_sweep_is_on_the_beat_schedule(settings):
    entries = {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "billing.invoice_pdfs_missing" in entries
