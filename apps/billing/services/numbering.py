"""Gapless document numbers: ``PC-2026-000123`` for invoices, ``CN-2026-000007`` for credit
notes. Allocated inside the issuing transaction from a locked counter row: a rollback returns
the numbers with it, so none is ever skipped, and the unique column backs it."""

from django.conf import settings
from django.db import transaction

from apps.billing.models import NumberCounter


def numbers_allocate(*, kind: str, year: int, count: int = 1) -> list[str]:
    """The next ``count`` numbers of ``kind`` ('invoice' or 'credit_note') for ``year``, in
    order. Must run inside the transaction that issues the documents."""
    if count < 1:
        return []
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("numbers are allocated inside the issuing transaction")
    prefix = (
        settings.PERCALL_INVOICE_NUMBER_PREFIX
        if kind == "invoice"
        else settings.PERCALL_CREDIT_NOTE_NUMBER_PREFIX
    )
    return [
        f"{prefix}-{year}-{n:06d}" for n in counter_advance(series=f"{kind}:{year}", count=count)
    ]


def counter_advance(*, series: str, count: int = 1) -> range:
    """The next ``count`` values of a gapless series (``statement:2026-10``), under the
    counter row's lock; must run inside the issuing transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("numbers are allocated inside the issuing transaction")
    NumberCounter.objects.get_or_create(series=series)
    counter = NumberCounter.objects.select_for_update().get(series=series)
    first = counter.last + 1
    counter.last += count
    counter.save(update_fields=["last"])
    return range(first, first + count)
