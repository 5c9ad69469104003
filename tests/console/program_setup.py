"""A small, fully known API program for the console tests, October 2026 (billed on
1 November, looked at on 3 November), sent through the real ingestion, both rollups and the
billing run (catalog and helpers of ``tests.assurance.leakage_setup``: Standard is 50.00 a
month plus 0.10 a call after 10 free and 0.001 a token; Starter is 5.00 with free calls).

  acme     registered 2026-09-20 00:00, Standard from 1 October. One call on 2026-09-25 12:00
           (its first; no subscription then: a ``no_subscription`` finding for September),
           then in October 30 calls to /v1/search (0.01 each) and 2 LLM calls of 1,000
           tokens to /v1/chat (0.05 each), all on 5 October.
  globex   registered 2026-10-10 00:00, Starter from 1 October; 4 calls to /v1/search on
           12 October 12:00 (0.01 each), one of them failed (status 500).
  initech  registered 2026-10-20, never calls, no subscription.
  later    registered 2026-11-01: not a partner of October yet.
"""

from datetime import UTC, date, datetime

from apps.assurance.services.scans import leakage_scan
from apps.billing.services.runs import billing_run
from tests.assurance.leakage_setup import (
    BILLED_AT,
    RECEIVED,
    calls,
    catalog_load,
    event,
    send,
    subscribe,
)

NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)
SEPTEMBER = date(2026, 9, 1)


def program_load(make_tenant) -> dict:
    catalog_load()
    acme = make_tenant("acme", registered_at=datetime(2026, 9, 20, tzinfo=UTC))
    globex = make_tenant("globex", registered_at=datetime(2026, 10, 10, tzinfo=UTC))
    initech = make_tenant("initech", registered_at=datetime(2026, 10, 20, tzinfo=UTC))
    later = make_tenant("later", registered_at=datetime(2026, 11, 1, tzinfo=UTC))
    subscribe(acme, "std")
    subscribe(globex, "starter")
    events = [
        event(timestamp="2026-09-25T12:00:00Z", endpoint="/v1/search"),
        *calls(30, endpoint="/v1/search"),
        *(event("llm.call", cost="0.05", input_tokens=1000, endpoint="/v1/chat") for _ in range(2)),
        *calls(3, tenant="globex", day=12, endpoint="/v1/search"),
        event(tenant="globex", day=12, endpoint="/v1/search", status_code=500),
    ]
    send(events, at=RECEIVED)
    billing_run(as_of=BILLED_AT)
    leakage_scan(period_start=SEPTEMBER)
    return {"acme": acme, "globex": globex, "initech": initech, "later": later}
