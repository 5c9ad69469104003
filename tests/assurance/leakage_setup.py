"""A month of billing to reconcile: October 2026, billed on 1 November at 02:00 (after the
one-hour grace), scanned on 3 November. Events carry their own USD cost, go through the real
ingestion and both rollups, and (unless said otherwise) arrive on 31 October, before the
invoices are issued."""

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import count

import time_machine

from apps.billing.services.credits import credit_grant_issue
from apps.billing.services.runs import billing_run
from apps.billing.services.subscriptions import subscription_create
from apps.catalog.selectors import plan_get
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.costs.services.rollup import cost_rollup_pending_run
from apps.metering.services.rollup import rollup_pending_run
from tests.metering.ingesting import ingest_events

NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)
OCTOBER = date(2026, 10, 1)
SEP = datetime(2026, 9, 1, tzinfo=UTC)
OCT = datetime(2026, 10, 1, tzinfo=UTC)
RECEIVED = datetime(2026, 10, 31, 12, tzinfo=UTC)  # before the invoices are issued
BILLED_AT = datetime(2026, 11, 1, 2, tzinfo=UTC)

CATALOG = {
    "meters": [
        {"code": "calls", "event_type": "api.call", "aggregation": "count"},
        {"code": "tokens", "event_type": "llm.call", "aggregation": "sum", "field": "input_tokens"},
        {"code": "jobs", "event_type": "job.run", "aggregation": "sum", "field": "quantity"},
    ],
    "rate_cards": [
        {
            "code": "std-card",
            "currency": "USD",
            "effective_from": "2026-01-01T00:00:00Z",
            "charges": [
                # 0.10 a call after 10 free ones
                {"meter": "calls", "model": "per_unit", "unit_price": "0.10", "free_units": "10"},
                # 0.001 a token
                {"meter": "tokens", "model": "per_unit", "unit_price": "0.001"},
            ],
        },
        {
            "code": "free-card",
            "currency": "USD",
            "effective_from": "2026-01-01T00:00:00Z",
            "charges": [
                {"meter": "calls", "model": "per_unit", "unit_price": "0", "free_units": "10"}
            ],
        },
    ],
    "plans": [
        {
            "code": "std",
            "name": "Standard",
            "interval": "month",
            "base_fee": "50.00",
            "rate_card": "std-card",
        },
        {
            "code": "starter",
            "name": "Starter",
            "interval": "month",
            "base_fee": "5.00",
            "rate_card": "free-card",
        },
    ],
}

_ids = count(1)


def catalog_load() -> None:
    catalog_apply(doc=catalog_parse(content=json.dumps(CATALOG)))


def event(kind: str = "api.call", *, tenant: str = "acme", day: int = 5, cost: str | None = "0.01",
          hour: int = 12, **attributes) -> dict:  # fmt: skip
    """One event on 2026-10-``day`` (or another month via ``timestamp``) with its own cost."""
    item = {
        "id": f"lk-{next(_ids)}",
        "type": kind,
        "tenant": tenant,
        "timestamp": f"2026-10-{day:02d}T{hour:02d}:00:00Z",
        **attributes,
    }
    if cost is not None:
        item["cost"] = cost
        item["cost_currency"] = "USD"
    return item


def calls(n: int, **kwargs) -> list[dict]:
    return [event("api.call", **kwargs) for _ in range(n)]


def send(events: Iterable[dict], *, at: datetime | None = None) -> None:
    """Ingest (received at ``at``, default: now) and run both rollups, as the jobs would."""
    items = list(events)
    if at is None:
        ingest_events(*items, backfill=True)
    else:
        with time_machine.travel(at, tick=False):
            ingest_events(*items, backfill=True)
    rollup_pending_run()
    cost_rollup_pending_run()


def subscribe(tenant, plan: str = "std", start: datetime = OCT):
    return subscription_create(tenant=tenant, plan=plan_get(code=plan), start=start)


def credit(tenant, amount: str):
    return credit_grant_issue(
        tenant_id=tenant.id,
        currency=tenant.currency,
        amount=Decimal(amount),
        effective_at=SEP,
        expires_at=None,
        reason="welcome",
    )


def clean_acme(make_tenant, extra: Iterable[dict] = ()):
    """acme on Standard since 1 October with a 10.00 grant; in October 30 calls (0.01 each)
    and 2 LLM calls of 1,000 tokens (0.05 each), billed and finalized:
    base 50.00 + calls (30 - 10 free) x 0.10 = 2.00 + tokens 2,000 x 0.001 = 2.00 = 54.00,
    less 10.00 of credits. Costs 30 x 0.01 + 2 x 0.05 = 0.40."""
    acme = make_tenant("acme")
    subscribe(acme)
    credit(acme, "10.00")
    events = [*calls(30), *(event("llm.call", cost="0.05", input_tokens=1000) for _ in range(2))]
    send([*events, *extra], at=RECEIVED)
    billing_run(as_of=BILLED_AT)
    return acme
