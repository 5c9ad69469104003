"""Shared set-up for billing tests: a catalog of every pricing model, events sent through the
real ingestion path (rolled up when they commit), and invoices read as the API shows them."""

import itertools
import json
from datetime import datetime

from apps.billing.api.output import invoice_dict
from apps.billing.models import Invoice
from apps.billing.services.subscriptions import subscription_create
from apps.catalog.selectors import plan_get
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.metering.services.rollup import rollup_pending_run
from tests.metering.ingesting import ingest_events

CATALOG = {
    "meters": [
        {"code": "calls", "event_type": "api.call", "aggregation": "count"},
        {"code": "units", "event_type": "job.run", "aggregation": "sum", "field": "quantity"},
        {
            "code": "tokens",
            "event_type": "llm.call",
            "aggregation": "sum",
            "field": "input_tokens",
            "group_by": ["model"],
        },
        {
            "code": "users",
            "event_type": "api.call",
            "aggregation": "unique_count",
            "field": "properties.user_id",
        },
        {"code": "seats", "event_type": "seat.count", "aggregation": "latest", "field": "quantity"},
    ],
    "rate_cards": [
        {
            "code": "usd-card",
            "currency": "USD",
            "effective_from": "2026-01-01T00:00:00Z",
            "charges": [
                {
                    "meter": "units",
                    "model": "graduated",
                    "tiers": [
                        {"up_to": "100000", "unit_price": "0"},
                        {"up_to": "1000000", "unit_price": "0.0002"},
                        {"up_to": None, "unit_price": "0.0001", "flat_fee": "5"},
                    ],
                },
                {
                    "meter": "tokens",
                    "filter": {"model": "gpt-4o"},
                    "model": "per_unit",
                    "unit_price": "2.50",
                    "package_size": "1000000",
                },
                {
                    "meter": "tokens",
                    "filter": {"model": "mini"},
                    "model": "per_unit",
                    "unit_price": "0.15",
                    "package_size": "1000000",
                },
                {
                    "meter": "users",
                    "model": "volume",
                    "tiers": [
                        {"up_to": "2", "unit_price": "1.00"},
                        {"up_to": None, "unit_price": "0.80"},
                    ],
                },
                {
                    "meter": "calls",
                    "model": "package",
                    "package_size": "10",
                    "package_price": "0.50",
                    "free_units": "5",
                },
                {"meter": "seats", "model": "per_unit", "unit_price": "12.00"},
            ],
        },
        {
            "code": "per-call",
            "currency": "USD",
            "effective_from": "2026-01-01T00:00:00Z",
            "charges": [{"meter": "calls", "model": "per_unit", "unit_price": "1.00"}],
        },
        {
            "code": "jpy-card",
            "currency": "JPY",
            "effective_from": "2026-01-01T00:00:00Z",
            "charges": [{"meter": "calls", "model": "per_unit", "unit_price": "0.5"}],
        },
        {
            "code": "kwd-card",
            "currency": "KWD",
            "effective_from": "2026-01-01T00:00:00Z",
            "charges": [{"meter": "calls", "model": "per_unit", "unit_price": "0.0125"}],
        },
    ],
    "plans": [
        {
            "code": "growth",
            "name": "Growth",
            "interval": "month",
            "base_fee": "99.00",
            "rate_card": "usd-card",
        },
        {"code": "metered", "name": "Metered", "interval": "month", "rate_card": "usd-card"},
        {
            "code": "pro",
            "name": "Pro",
            "interval": "month",
            "base_fee": "310.00",
            "minimum_commitment": "100.00",
            "rate_card": "usd-card",
        },
        {
            "code": "trial-pro",
            "name": "Trial Pro",
            "interval": "month",
            "base_fee": "310.00",
            "trial_days": 10,
            "rate_card": "usd-card",
        },
        {"code": "calls", "name": "Calls", "interval": "month", "rate_card": "per-call"},
        {
            "code": "yen",
            "name": "Yen",
            "interval": "month",
            "base_fee": "1000",
            "rate_card": "jpy-card",
        },
        {
            "code": "dinar",
            "name": "Dinar",
            "interval": "month",
            "base_fee": "10.000",
            "rate_card": "kwd-card",
        },
        {
            "code": "yearly",
            "name": "Yearly",
            "interval": "year",
            "base_fee": "1200.00",
            "rate_card": "per-call",
        },
    ],
    "credit_packs": [
        {
            "code": "pack-100",
            "name": "$100 of credits",
            "price": "90.00",
            "credits": "100.00",
            "currency": "USD",
            "expires_after_days": 30,
        },
    ],
}

_ids = itertools.count()


# The smallest catalog: 1.00 USD a call on the "calls" plan, nothing else.
PER_CALL_CATALOG = {
    "meters": [{"code": "calls", "event_type": "api.call", "aggregation": "count"}],
    "rate_cards": [
        {
            "code": "per-call",
            "currency": "USD",
            "effective_from": "2026-01-01T00:00:00Z",
            "charges": [{"meter": "calls", "model": "per_unit", "unit_price": "1.00"}],
        }
    ],
    "plans": [{"code": "calls", "name": "Calls", "interval": "month", "rate_card": "per-call"}],
}


def catalog_load() -> None:
    catalog_apply(doc=catalog_parse(content=json.dumps(CATALOG)))


def subscribe(tenant, plan: str, start: datetime):
    return subscription_create(tenant=tenant, plan=plan_get(code=plan), start=start)


def event(tenant: str, kind: str, at: str, **attributes) -> dict:
    return {"id": f"e{next(_ids)}", "tenant": tenant, "type": kind, "timestamp": at, **attributes}


def send(*events: dict) -> None:
    """Ingest, then roll up what the batch queued (a test's transaction never commits, so the
    rollup a commit would start is run here)."""
    ingest_events(*events, backfill=True)
    rollup_pending_run()


def invoice_of(tenant, period_start: datetime) -> dict:
    invoice = Invoice.objects.exclude(status="void").get(tenant=tenant, period_start=period_start)
    return invoice_dict(invoice)


def lines_of(invoice: dict) -> list[tuple[str, str, str | None, str]]:
    """(kind, description, quantity, amount) of every line, as the API shows them."""
    return [
        (ln["kind"], ln["description"], ln["quantity"], ln["amount"]) for ln in invoice["lines"]
    ]
