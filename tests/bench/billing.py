"""Invoice-run throughput: ``BENCH_BILLING_TENANTS`` (10,000) tenants on a five-charge rate card
over ``BENCH_BILLING_EVENTS`` (5,000,000) October events, then one billing run that drafts and
finalizes every October invoice, on the clock (PDFs excluded: their renders are timed apart).

Set-up, not timed: the demo's catalog (its USD card: graduated calls, a per-unit and a package
charge on two features, a volume charge on unique users, per-token LLM input), tenants and
subscriptions written in bulk, the events generated server-side on PostgreSQL (each tenant's
traffic in one hour of each day: 31 tenant-hours each), then the real rollup (usage and meter
rollups). Dedupe keys are not written: billing never reads them.
"""

import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tests.bench.scratch import ScratchDatabase, raw_connect, settle, tables_empty

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
AS_OF = datetime(2026, 11, 1, 2, tzinfo=UTC)
_TABLES = [
    "metering_event",
    "metering_event_key",
    "metering_rollup_pending",
    "metering_usage_rollup",
    "metering_rollup_hour",
    "metering_meter_rollup",
    "metering_ingest_tally",
    "metering_ingest_batch",
]
# One row per event: the tenant (by number), the day and minute in its hour, and the shape.
_GENERATE = """
INSERT INTO metering_event (tenant_id, "timestamp", event_id, type, received_at, feature, "user",
    model, input_tokens, properties, backfill)
SELECT t.id,
       %(october)s::timestamptz + (g %% 31) * interval '1 day' + t.hour * interval '1 hour'
           + (g %% 3600) * interval '1 second',
       'bb_' || g,
       CASE WHEN g %% 5 = 0 THEN 'llm.call' ELSE 'api.call' END,
       %(october)s::timestamptz,
       CASE WHEN g %% 5 = 0 THEN NULL
            ELSE (ARRAY['doc-extract', 'search', 'summarize', 'chat'])[1 + (g / 7) %% 4] END,
       CASE WHEN g %% 5 = 0 THEN NULL ELSE 'user-' || ((g / 11) %% 50) END,
       CASE WHEN g %% 5 = 0 THEN (ARRAY['gpt-4o', 'gpt-4o-mini'])[1 + (g / 13) %% 2] END,
       CASE WHEN g %% 5 = 0 THEN 200 + (g %% 1800) END,
       '{}'::jsonb,
       true
FROM generate_series(0, %(count)s - 1) AS g
JOIN bench_tenant t ON t.n = g %% %(tenants)s
"""


@dataclass
class BillingBench:
    tenants: int
    events: int
    load_s: float
    rollup_s: float
    run_s: float
    finalized: int
    pdf_renders: int
    pdf_s: float
    leakage_s: float = 0.0  # a leakage scan of October over every tenant, after the run
    findings: int = 0


def _tenants_subscribe(count: int) -> list[uuid.UUID]:
    """Tenants and their October subscriptions, in bulk (set-up, not what is measured)."""
    from apps.billing.models import Subscription
    from apps.catalog.models import Plan
    from apps.tenants.models import Tenant

    plan = Plan.objects.get(code="growth-usd")
    registered = OCTOBER - timedelta(days=30)
    tenants = [
        Tenant(
            external_id=f"bill-{n:05d}",
            name=f"Billing bench {n}",
            currency="USD",
            timezone="UTC",
            tax_rate="0.1" if n % 3 else "0",
            registered_at=registered,
        )
        for n in range(count)
    ]
    Tenant.objects.bulk_create(tenants, batch_size=2000)
    Subscription.objects.bulk_create(
        [Subscription(tenant=t, plan=plan, started_at=OCTOBER) for t in tenants], batch_size=2000
    )
    return [t.id for t in tenants]


def _events_load(scratch: ScratchDatabase, tenant_ids: list[uuid.UUID], count: int) -> None:
    conn = raw_connect(scratch)
    try:
        with conn.cursor() as cursor:
            cursor.execute("CREATE TEMPORARY TABLE bench_tenant (n integer, id uuid, hour int)")
            with cursor.copy("COPY bench_tenant (n, id, hour) FROM STDIN") as copy:
                for n, tenant_id in enumerate(tenant_ids):
                    copy.write_row((n, tenant_id, n % 24))
            cursor.execute(
                _GENERATE, {"october": OCTOBER, "count": count, "tenants": len(tenant_ids)}
            )
            cursor.execute(
                "INSERT INTO metering_rollup_pending (tenant_id, hour, marked_at) "
                "SELECT DISTINCT tenant_id, date_bin('1 hour', \"timestamp\", "
                "TIMESTAMPTZ '2000-01-01 00:00:00+00'), now() FROM metering_event"
            )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM (ANALYZE) metering_event, metering_rollup_pending")
    finally:
        conn.close()


def billing_measure(*, scratch: ScratchDatabase, tenants: int, events: int) -> BillingBench:
    from django.conf import settings
    from django.db import transaction

    from apps.assurance.services.scans import leakage_scan
    from apps.billing.models import Invoice
    from apps.billing.services.pdf import invoice_pdf_render
    from apps.billing.services.runs import billing_run
    from apps.catalog.services.apply import catalog_apply
    from apps.catalog.services.document import catalog_parse
    from apps.demo.billing import CATALOG_FILE
    from apps.metering.services.partitions import event_partitions_ensure
    from apps.metering.services.rollup import rollup_pending_run

    began = time.perf_counter()
    tables_empty(scratch, _TABLES)
    with transaction.atomic():
        event_partitions_ensure(months={(2026, 10), (2026, 11)})
    catalog_apply(doc=catalog_parse(content=CATALOG_FILE.read_text()))
    tenant_ids = _tenants_subscribe(tenants)
    _events_load(scratch, tenant_ids, events)
    load_s = time.perf_counter() - began
    print(f"bench: billing set-up: {tenants:,} tenants, {events:,} events in {load_s:.1f} s",
          file=sys.stderr)  # fmt: skip
    began = time.perf_counter()
    while rollup_pending_run():
        pass
    rollup_s = time.perf_counter() - began
    print(f"bench: billing set-up: rollup in {rollup_s:.1f} s", file=sys.stderr)
    settle(scratch)
    began = time.perf_counter()
    report = billing_run(as_of=AS_OF)
    run_s = time.perf_counter() - began
    if report.problems or report.finalized != tenants:
        raise RuntimeError(f"billing run: {report.as_dict()}")
    began = time.perf_counter()
    scan = leakage_scan(period_start=OCTOBER.date())
    leakage_s = time.perf_counter() - began
    print(f"bench: leakage scan in {leakage_s:.1f} s: {scan.counts}", file=sys.stderr)
    settings.MEDIA_ROOT = "/tmp/percall-bench-media"
    sample = list(Invoice.objects.order_by("number").values_list("id", flat=True)[:40])
    began = time.perf_counter()
    for invoice_id in sample:
        invoice_pdf_render(invoice_id=str(invoice_id))
    pdf_s = time.perf_counter() - began
    return BillingBench(
        tenants,
        events,
        load_s,
        rollup_s,
        run_s,
        report.finalized,
        len(sample),
        pdf_s,
        leakage_s,
        sum(scan.counts.values()),
    )
