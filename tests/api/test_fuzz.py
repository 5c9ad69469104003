"""The whole API fuzzed from its own OpenAPI document with schemathesis.

Every operation of ``/api/schema/`` is called in-process (WSGI) against a seeded October 2026
(``tests.console.program_setup``: tenants, subscriptions, finalized invoices, findings, plus
statements, a budget, a webhook endpoint with a delivery and a credit pack), once with an
operator-wide admin key and once with a key bound to ``acme``. Path ids, and the query and
body names in ``REAL`` (tenant, period, plan...), are drawn half the time from the real
objects, so the fuzz reaches past the 404s and 400s into the views. Every answer must be no
5xx, a documented status code, the documented content type and a body matching the
documented schema.

Bounded for CI: a fixed number of fuzzed examples per operation (plus schemathesis's
deterministic coverage cases), a per-example deadline and a fixed seed, derandomized, so a
run is reproducible and the module takes about a minute on SQLite on two cores. Each
operation of each pass is one test on its own freshly seeded world, rolled back after it:
what its examples create (tenants, events, budgets, voided invoices...) is seen by the
examples after them, never by another operation.
"""

import json
import os
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
import time_machine
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.alerts.models import WebhookDelivery, WebhookMessage
from apps.alerts.services.budgets.manage import budget_create
from apps.alerts.services.webhooks import webhook_endpoint_create
from apps.assurance.models import Finding
from apps.billing.models import Invoice, Subscription
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.chargeback.models import Statement
from apps.chargeback.services.statements import statements_run
from apps.costs.selectors import cost_period_parse
from apps.tenants.services.api_keys import api_key_create
from tests.assurance.leakage_setup import CATALOG
from tests.console.program_setup import NOW, program_load

SEED = 20261103
# Fuzzed examples per operation and pass, on top of the coverage cases; raise it for a deeper
# run by hand (PERCALL_FUZZ_EXAMPLES=200), CI keeps the bound.
MAX_EXAMPLES = int(os.environ.get("PERCALL_FUZZ_EXAMPLES", "8"))
DEADLINE = timedelta(seconds=5)  # one example (a request); PDFs are the slowest

CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

PACK = {"code": "pack-50", "name": "$50", "price": "45.00", "credits": "50.00",
        "expires_after_days": 365}  # fmt: skip

# What the hooks below draw real values from; filled by the ``world`` fixture of each pass.
REAL: dict[str, list[str]] = {}


def _config() -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                "mode": "all",
            },
            # Wrong methods (405) are Django's and DRF's, not ours: not worth the time.
            "phases": {"coverage": {"unexpected-methods": []}, "stateful": {"enabled": False}},
        }
    )


@pytest.fixture
def world(make_tenant) -> dict[str, Any]:
    """The seeded October plus what the API's path parameters can name."""
    with time_machine.travel(NOW, tick=False):
        tenants = program_load(make_tenant)
        catalog_apply(doc=catalog_parse(content=json.dumps({**CATALOG, "credit_packs": [PACK]})))
        statements_run(period=cost_period_parse("2026-10"))
        acme = tenants["acme"]
        budget = budget_create(
            name="acme calls", scope="tenant", measure="cost", amount="100", tenant=acme
        )
        endpoint = webhook_endpoint_create(
            url="https://hooks.example.com/percall", tenant_id=acme.id, event_types=[]
        )
        message = WebhookMessage.objects.create(
            msg_id="msg_fuzz",
            event_type="invoice.finalized",
            body="{}",
            tenant=acme,
            outbox_event_id=1,
        )
        delivery = WebhookDelivery.objects.create(endpoint=endpoint, message=message)
    REAL.clear()
    REAL.update(
        {
            "external_id": ["acme", "globex"],
            # external ids, and an id for the analytics' ``tenant``
            "tenant": ["acme", "globex", str(acme.id)],
            "subscription_id": [str(s.id) for s in Subscription.objects.all()],
            "invoice_id": [str(i.id) for i in Invoice.objects.all()],
            "finding_id": [str(f.id) for f in Finding.objects.all()],
            "statement_id": [str(s.id) for s in Statement.objects.all()],
            "budget_id": [str(budget.id)],
            "endpoint_id": [str(endpoint.id)],
            "delivery_id": [str(delivery.id)],
            "metric": ["cost", "margin", "workflow_depth"],
            "period": ["2026-10", "2026-09"],
            "from": ["2026-10-01T00:00:00Z"],
            "to": ["2026-11-01T00:00:00Z", "2026-10-05T13:00:00+02:00"],
            "hour": ["2026-10-05T12:00:00Z"],
            "group_by": ["endpoint", "tenant,feature"],
            "plan": ["std", "starter"],
            "pack": ["pack-50"],
        }
    )
    return {"tenants": tenants, "acme": acme}


def _real_or_drawn(values: Any, declared: set[str] | None = None) -> st.SearchStrategy:
    """The drawn values, or the same with every known name (drawn, or ``declared`` by the
    operation and left out) set to a real value."""
    if not isinstance(values, dict):
        return st.just(values)
    names = sorted(n for n in set(values) | (declared or set()) if REAL.get(n))
    if not names:
        return st.just(values)
    real = st.fixed_dictionaries({name: st.sampled_from(REAL[name]) for name in names})
    return st.one_of(st.just(values), real.map(lambda chosen: {**values, **chosen}))


def _declared(ctx: Any, where: str) -> set[str]:
    operation = ctx.operation.definition.raw if ctx.operation else {}
    return {p["name"] for p in operation.get("parameters", []) if p.get("in") == where}


def _schema_load() -> Any:
    """The document ``/api/schema/`` serves, from drf-spectacular's generator (no request, so
    no database at import), fuzzed against the WSGI application in-process."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    raw = json.loads(OpenApiJsonRenderer().render(document, renderer_context={}))
    loaded = schemathesis.openapi.from_dict(raw, config=_config())
    loaded.app = WSGIHandler()
    return loaded


schema = _schema_load()


@schema.hook("flatmap_path_parameters")
def real_path(ctx: Any, values: Any) -> st.SearchStrategy:
    return _real_or_drawn(values)


@schema.hook("flatmap_query")
def real_query(ctx: Any, values: Any) -> st.SearchStrategy:
    return _real_or_drawn(values if values is not None else {}, _declared(ctx, "query"))


@schema.hook("flatmap_body")
def real_body(ctx: Any, values: Any) -> st.SearchStrategy:
    return _real_or_drawn(values)


@pytest.fixture
def operator_key(world) -> dict[str, str]:
    key = api_key_create(name="fuzz operator", scopes=["ingest", "read", "admin"])
    return {"Authorization": f"Bearer {key.plaintext}"}


@pytest.fixture
def tenant_key(world) -> dict[str, str]:
    key = api_key_create(name="fuzz acme", scopes=["ingest", "read", "admin"], tenant=world["acme"])
    return {"Authorization": f"Bearer {key.plaintext}"}


@pytest.fixture
def in_process():
    """The clock pinned an hour after the seed, and the test's database connection kept open
    across requests: Django closes connections when a request finishes, which inside the
    test's transaction (not autocommit) would drop it; its test client disconnects the same
    signal handler."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        with time_machine.travel(NOW + timedelta(hours=1), tick=False):
            yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


_settings = settings(
    max_examples=MAX_EXAMPLES,
    deadline=DEADLINE,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@_settings
def test_operator_admin_key(case, operator_key, in_process):
    case.call_and_validate(headers=operator_key, checks=CHECKS)


@schema.parametrize()
@_settings
def test_tenant_bound_key(case, tenant_key, in_process):
    case.call_and_validate(headers=tenant_key, checks=CHECKS)
