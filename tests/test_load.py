"""A bounded load test on loopback: real gunicorn (2 workers) and a real Celery worker on the
test database and broker; client threads send a fixed number of event batches, 10 % of the
events resends of events already sent and 1 % malformed, while rollups and invoice runs go on.
Afterwards the stored events, the rollups and the invoice quantities all equal the unique valid
events sent. The throughput is printed, not asserted: speed targets live in ``make bench``."""

import http.client
import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from apps.billing.models import Invoice, InvoiceLine
from apps.billing.services.subscriptions import subscription_create
from apps.catalog.selectors import plan_get
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.metering.models import Event, RollupPending, UsageRollup
from tests.workers import (
    BIN,
    ROOT,
    Worker,
    broker_clean,
    broker_queued,
    broker_unacked,
    free_port,
    subprocess_env,
    task_send,
    wait_for,
)

TENANTS = ("load-a", "load-b", "load-c", "load-d")
CLIENTS = 4
BATCHES = 60  # per client
FRESH, RESENT, MALFORMED = 178, 20, 2  # of each batch of 200 (after a client's first)
CATALOG = {
    "meters": [
        {"code": "calls", "event_type": "api.call", "aggregation": "count"},
        {"code": "units", "event_type": "api.call", "aggregation": "sum", "field": "quantity"},
    ],
    "rate_cards": [
        {
            "code": "load-card",
            "currency": "USD",
            "effective_from": "2026-01-01T00:00:00Z",
            "charges": [
                {"meter": "calls", "model": "per_unit", "unit_price": "0.001"},
                {"meter": "units", "model": "per_unit", "unit_price": "0.01"},
            ],
        }
    ],
    "plans": [{"code": "load", "name": "Load", "interval": "month", "rate_card": "load-card"}],
}


def _period(now: datetime) -> tuple[datetime, datetime, datetime]:
    """The last closed UTC month, and where its events may start: within the late window
    (35 days, less a day of margin), which covers at least the month's last 3 days whatever
    the date (on 2026-12-01, all of November)."""
    end = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (end - timedelta(days=1)).replace(day=1)
    return start, end, max(start, now - timedelta(days=34))


class Client:
    """One sender on its own keep-alive connection, remembering what it sent."""

    def __init__(self, number: int, port: int, key: str, first: datetime, end: datetime):
        self.number, self.port, self.key = number, port, key
        self.first, self.span = first, (end - first).total_seconds() - 60
        self.sent: list[dict] = []  # fresh valid events, in order
        self.answers = Counter()
        self.counts = Counter()  # resent, malformed, requests
        self.error: BaseException | None = None

    def _event(self, k: int) -> dict:
        offset = (k * 7919 + self.number * 104729) % int(self.span)
        at = self.first + timedelta(seconds=offset, milliseconds=k % 1000)
        return {
            "id": f"c{self.number}-{k}",
            "tenant": TENANTS[(k + self.number) % len(TENANTS)],
            "type": "api.call",
            "timestamp": at.isoformat().replace("+00:00", "Z"),
            "quantity": 1 + k % 5,
            "endpoint": f"/v1/{('chat', 'embed', 'search')[k % 3]}",
        }

    def _batch(self, index: int) -> list[dict]:
        fresh = [
            self._event(len(self.sent) + n) for n in range(FRESH + (RESENT if not index else 0))
        ]
        resent = (
            [self.sent[(index * 131 + n * 17) % len(self.sent)] for n in range(RESENT)]
            if index
            else []
        )
        bad = [
            {"id": f"bad-{self.number}-{index}-0", "tenant": TENANTS[0], "type": "api.call",
             "timestamp": "yesterday"},
            {"id": f"bad-{self.number}-{index}-1", "tenant": TENANTS[1],
             "timestamp": fresh[0]["timestamp"]},
        ][:MALFORMED]  # fmt: skip
        self.sent.extend(fresh)
        self.counts["resent"] += len(resent)
        self.counts["malformed"] += len(bad)
        mixed = fresh + resent + bad
        mixed.sort(key=lambda e: e["id"][-3:])  # interleaved, deterministically
        return mixed

    def run(self) -> None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
            for index in range(BATCHES):
                body = json.dumps({"events": self._batch(index)})
                connection.request("POST", "/api/v1/events", body=body, headers=headers)
                response = connection.getresponse()
                answer = json.loads(response.read())
                assert response.status in (200, 207), answer
                for name in ("accepted", "duplicates", "conflicts", "rejected"):
                    self.answers[name] += answer[name]
                self.counts["requests"] += 1
            connection.close()
        except BaseException as exc:  # reported by the test thread
            self.error = exc


@pytest.fixture
def services():
    """gunicorn with 2 workers on a free loopback port, and a Celery worker for rollups and
    billing (2 pool processes), both on the test database and broker."""
    import subprocess

    broker_clean()
    port = free_port()
    # Nothing is killed here: the production-like visibility timeout of minutes, not the crash
    # tests' 3 s, which would hand every task running longer to the worker a second time.
    timeout = {"CELERY_BROKER_VISIBILITY_TIMEOUT": "600"}
    env = subprocess_env(PERCALL_RATE_KEY_PER_MINUTE="0", LOG_LEVEL="WARNING", **timeout)
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "config.wsgi:application", "-w", "2", "-b", f"127.0.0.1:{port}",
         "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    worker = Worker(queues="rollups,billing", concurrency=2, **timeout)
    worker.start()

    def up() -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except OSError:
            return False

    try:
        wait_for(up, timeout=30, what="gunicorn to answer /healthz", every=0.2)
        yield port, worker
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        worker.close()
        broker_clean()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_ingestion_under_load_with_resends_and_bad_events_stores_rolls_up_and_bills_each_once(
    make_tenant, make_key, services, capsys
):
    # given four tenants on a metered plan from the start of the last closed month
    port, worker = services
    start, end, first = _period(timezone.now())
    catalog_apply(doc=catalog_parse(content=json.dumps(CATALOG)))
    for code in TENANTS:
        subscription_create(tenant=make_tenant(code), plan=plan_get(code="load"), start=start)
    key = make_key(scopes=("ingest",))
    clients = [Client(n, port, key, first, end) for n in range(CLIENTS)]

    # when four clients send 60 batches each while invoice runs (drafts: the month has ended,
    # its grace has not) go on every 2 s, beside the rollups each commit kicks
    draft_as_of = (end + timedelta(minutes=10)).isoformat()
    sending = threading.Event()

    def invoice_runs() -> None:
        while not sending.wait(2):
            task_send("billing.billing_run", as_of=draft_as_of)

    runner = threading.Thread(target=invoice_runs)
    threads = [threading.Thread(target=c.run) for c in clients]
    began = time.monotonic()
    runner.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    seconds = time.monotonic() - began
    sending.set()
    runner.join()
    assert [c.error for c in clients] == [None] * CLIENTS

    # then the server said what was sent: each fresh event accepted, each resend a duplicate,
    # each malformed event rejected, none a conflict
    unique = [e for c in clients for e in c.sent]
    sent_total = len(unique) + sum(c.counts["resent"] + c.counts["malformed"] for c in clients)
    answers = sum((c.answers for c in clients), Counter())
    assert answers["accepted"] == len(unique) == CLIENTS * (BATCHES * FRESH + RESENT)
    assert answers["duplicates"] == sum(c.counts["resent"] for c in clients)
    assert answers["rejected"] == sum(c.counts["malformed"] for c in clients)
    assert answers["conflicts"] == 0

    # and the stored events and, once the worker has caught up, the rollups equal them
    by_tenant = Counter(e["tenant"] for e in unique)
    units = Counter()
    for e in unique:
        units[e["tenant"]] += e["quantity"]
    assert Event.objects.count() == len(unique)

    def rolled_up() -> dict[str, tuple[int, int]]:
        rows = UsageRollup.objects.values("tenant__external_id").annotate(
            events=Sum("events"), quantity=Sum("quantity")
        )
        return {r["tenant__external_id"]: (r["events"], int(r["quantity"])) for r in rows}

    expected = {t: (by_tenant[t], units[t]) for t in TENANTS}
    wait_for(
        lambda: not RollupPending.objects.exists() and rolled_up() == expected,
        timeout=40,
        what=f"the rollups to catch up: {rolled_up()} != {expected}\n{worker.tail()}",
        every=0.2,
    )

    # and the invoice runs sent during the load have drafted every tenant's invoice
    wait_for(
        lambda: Invoice.objects.filter(status="draft").count() == len(TENANTS),
        timeout=30,
        what=f"the drafts of the runs during the load\n{worker.tail()}",
        every=0.2,
    )

    # when the month is closed by a run after its grace, once the draft runs still queued
    # are done (a run skips the subscriptions another run holds locked, leaving them to the
    # next scheduled run)
    wait_for(
        lambda: broker_queued("billing") == 0 and broker_unacked("billing.billing_run") == 0,
        timeout=30,
        what=f"the draft runs to finish\n{worker.tail()}",
        every=0.2,
    )
    task_send("billing.billing_run", as_of=(end + timedelta(hours=2)).isoformat())
    wait_for(
        lambda: Invoice.objects.filter(status="finalized").count() == len(TENANTS),
        timeout=30,
        what=f"the invoices to be finalized\n{worker.tail()}",
        every=0.2,
    )

    # then one invoice per tenant, whose quantities are the unique valid events sent
    invoices = Invoice.objects.select_related("tenant")
    assert sorted(i.tenant.external_id for i in invoices) == sorted(TENANTS)
    assert {(i.period_start, i.period_end) for i in invoices} == {(start, end)}
    lines = InvoiceLine.objects.filter(kind="usage").values_list(
        "invoice__tenant__external_id", "meter_code", "quantity"
    )
    billed = {(t, m): int(q) for t, m, q in lines}
    assert billed == {(t, "calls"): by_tenant[t] for t in TENANTS} | {
        (t, "units"): units[t] for t in TENANTS
    }
    with capsys.disabled():
        print(
            f"\nload test: {sent_total} events ({len(unique)} unique valid) in "
            f"{sum(c.counts['requests'] for c in clients)} requests over {seconds:.1f} s: "
            f"{sent_total / seconds:,.0f} events/s sent, {len(unique) / seconds:,.0f} stored/s "
            f"(gunicorn -w 2, {CLIENTS} client threads, Celery worker -c 2, loopback)"
        )


def test_period_helper_covers_the_late_window():
    # on the brief's today, 2026-12-01, all of November; late in a month, its last days
    assert _period(datetime(2026, 12, 1, 16, tzinfo=UTC)) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2026, 11, 1, tzinfo=UTC),
    )
    start, end, first = _period(datetime(2026, 12, 31, 23, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert end - first >= timedelta(days=3)
