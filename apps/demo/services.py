"""Loading the demo business, through Percall's own services like any other caller.

Tenants and cost centers come from the tenants services, traffic goes through the ingestion
service in backfill mode (the admin mode for events older than the late window), so the demo
exercises the same validation, dedupe and rollups as production traffic. Nothing here writes a
row of another app directly. Demo only: it also creates an ``admin``/``admin`` superuser.
"""

import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from apps.alerts.models import Budget, BudgetPeriod
from apps.assurance.models import Finding
from apps.billing.selectors import invoice_list
from apps.chargeback.selectors import statement_list
from apps.chargeback.services.statements import statement_period_last_closed
from apps.console.access import FINANCE_GROUP
from apps.demo.billing import DemoBilling, demo_billing_ensure
from apps.demo.business import (
    COST_CENTERS,
    FEATURES,
    MODELS,
    TENANTS,
    TenantPlan,
    business_plan,
    llm_cost,
)
from apps.demo.chargeback import demo_chargeback_ensure
from apps.demo.traffic import TrafficWindow, traffic_batches
from apps.metering.services.ingest import (
    CONTENT_JSON,
    DUPLICATE,
    IngestCaller,
    events_ingest,
)
from apps.tenants.errors import TenantExists
from apps.tenants.models import CostCenter
from apps.tenants.selectors import tenant_list
from apps.tenants.services.api_keys import IssuedApiKey, api_key_create
from apps.tenants.services.memberships import membership_invite
from apps.tenants.services.tenants import cost_center_create, tenant_create

DEMO_ADMIN_USERNAME = "admin"
# Demo only: `make run` on a laptop, never a deployed Percall.
DEMO_ADMIN_PASSWORD = "admin"  # noqa: S105
DEMO_PARTNER_USERNAME = "partner"
DEMO_PARTNER_EMAIL = "partner@percall-demo.example"
DEMO_PARTNER_PASSWORD = "partner"  # noqa: S105  (demo only, like the admin's)
DEMO_FINANCE_USERNAME = "finance"
DEMO_FINANCE_PASSWORD = "finance"  # noqa: S105  (demo only, like the admin's)
DEMO_BASE_URL = "http://127.0.0.1:8000"
DEMO_KEY_NAME = "demo ingest key"
DEMO_CALLER = IngestCaller(api_key_prefix="demo")
BATCH_SIZE = 5000  # the ingestion API's largest batch

_encoder = msgspec.json.Encoder(decimal_format="number")


@dataclass
class TrafficTotals:
    """What ingestion answered for the demo traffic, summed over its batches."""

    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    batches: int = 0
    problems: list[str] = field(default_factory=list)  # the first few refusals, for the log


@dataclass(frozen=True)
class DemoLoadResult:
    tenants: int  # demo tenants in the database after the load
    tenants_created: int
    cost_centers_created: int
    admin_created: bool
    window: TrafficWindow | None  # None when the load was skipped
    traffic: TrafficTotals = field(default_factory=TrafficTotals)
    billing: DemoBilling | None = None
    seconds: float = 0.0


def demo_tenants_exist() -> bool:
    return tenant_list(scope_tenant_id=None).filter(external_id__in=_demo_ids()).exists()


def _demo_tenant_count() -> int:
    return tenant_list(scope_tenant_id=None).filter(external_id__in=_demo_ids()).count()


def _demo_ids() -> list[str]:
    return [spec.external_id for spec in TENANTS]


def demo_window(*, plans: list[TenantPlan], days: int, now: datetime) -> TrafficWindow:
    """The demo period: ``days`` whole hours ending at the current hour, or, when demo tenants
    already exist, the period they were loaded for (read back from a tenant's registration
    time), so a re-run after a crash re-sends the very same events."""
    end = now.replace(minute=0, second=0, microsecond=0)
    window = TrafficWindow(start=end - timedelta(days=days), end=end)
    existing = tenant_list(scope_tenant_id=None).filter(external_id__in=_demo_ids()).first()
    if existing is None:
        return window
    plan = next(p for p in plans if p.spec.external_id == existing.external_id)
    start = existing.registered_at - (window.signup_at(plan) - window.start)
    if start + timedelta(days=days) > end:  # loaded for another period: no future events
        return window
    return TrafficWindow(start=start, end=start + timedelta(days=days))


def demo_partner_ensure(*, plans: list[TenantPlan]) -> list[str]:
    """The demo's partner login ``partner``/``partner``: an owner of the two busiest demo
    tenants, invited through the membership service like any partner's colleague (so the
    switcher has two to choose from). Returns their external ids. Demo only."""
    users = get_user_model()
    person = users.objects.filter(username=DEMO_PARTNER_USERNAME).first()
    if person is None:
        person = users.objects.create_user(
            username=DEMO_PARTNER_USERNAME, email=DEMO_PARTNER_EMAIL, password=DEMO_PARTNER_PASSWORD
        )
    admin = users.objects.get(username=DEMO_ADMIN_USERNAME)
    busiest = [p.spec.external_id for p in sorted(plans, key=lambda p: -p.size)[:2]]
    tenants = tenant_list(scope_tenant_id=None).filter(external_id__in=busiest)
    for tenant in tenants:
        if not person.memberships.filter(tenant=tenant).exists():
            membership_invite(
                tenant=tenant, email=DEMO_PARTNER_EMAIL, role="owner", invited_by=admin,
                base_url=DEMO_BASE_URL,
            )  # fmt: skip
    return busiest


def demo_finance_ensure() -> bool:
    """The demo's finance login ``finance``/``finance``: staff in the console's finance group,
    not a superuser. Returns whether it was created. Demo only."""
    users = get_user_model()
    if users.objects.filter(username=DEMO_FINANCE_USERNAME).exists():
        return False
    person = users.objects.create_user(
        username=DEMO_FINANCE_USERNAME,
        email="finance@percall-demo.example",
        password=DEMO_FINANCE_PASSWORD,
        is_staff=True,
    )
    person.groups.add(Group.objects.get_or_create(name=FINANCE_GROUP)[0])
    return True


def demo_admin_ensure() -> bool:
    """Create the demo superuser ``admin``/``admin`` unless a user of that name exists.
    Returns whether it was created. Demo only."""
    users = get_user_model()
    if users.objects.filter(username=DEMO_ADMIN_USERNAME).exists():
        return False
    users.objects.create_superuser(
        username=DEMO_ADMIN_USERNAME, email="admin@percall.example", password=DEMO_ADMIN_PASSWORD
    )
    return True


def _tenants_create(*, plans: list[TenantPlan], window: TrafficWindow) -> int:
    created = 0
    for plan in plans:
        spec = plan.spec
        try:
            tenant_create(
                external_id=spec.external_id,
                name=spec.name,
                currency=spec.currency,
                timezone_name=spec.timezone,
                billing_email=spec.billing_email,
                tax_rate=spec.tax_rate,
                registered_at=window.signup_at(plan),
            )
        except TenantExists:
            continue  # a previous, interrupted load created it
        created += 1
    return created


def _cost_centers_create() -> int:
    existing = set(CostCenter.objects.values_list("code", flat=True))
    created = 0
    for center in COST_CENTERS:
        if center.code not in existing:
            cost_center_create(code=center.code, name=center.name, parent_code=center.parent)
            created += 1
    return created


def demo_load(*, events: int, seed: int, days: int, if_empty: bool) -> DemoLoadResult:
    """Create the demo business and send ``events`` (about) events of its traffic over the
    last ``days`` days. With ``if_empty``, does nothing when demo tenants exist. Safe to re-run
    with the same arguments: tenants are kept, events come back as duplicates."""
    started = time.monotonic()
    if if_empty and demo_tenants_exist():
        return DemoLoadResult(
            tenants=_demo_tenant_count(),
            tenants_created=0,
            cost_centers_created=0,
            admin_created=False,
            window=None,
        )
    # A seeded, reproducible generator on purpose: demo data, not secrets.
    plans = business_plan(rng=random.Random(f"percall-demo:{seed}:business"))  # noqa: S311
    window = demo_window(plans=plans, days=days, now=timezone.now())
    admin_created = demo_admin_ensure()
    tenants_created = _tenants_create(plans=plans, window=window)
    centers_created = _cost_centers_create()
    demo_chargeback_ensure()
    # Billing first: meters defined before the traffic are rolled up with it, hour by hour,
    # instead of rebuilt over every hour afterwards.
    billing = demo_billing_ensure(plans=plans)
    demo_partner_ensure(plans=plans)
    demo_finance_ensure()
    totals = _traffic_send(seed=seed, plans=plans, window=window, events=events)
    return DemoLoadResult(
        tenants=_demo_tenant_count(),
        tenants_created=tenants_created,
        cost_centers_created=centers_created,
        admin_created=admin_created,
        window=window,
        traffic=totals,
        billing=billing,
        seconds=time.monotonic() - started,
    )


def _traffic_send(
    *, seed: int, plans: list[TenantPlan], window: TrafficWindow, events: int
) -> TrafficTotals:
    """Send the traffic in batches through ingestion, each batch its own transaction (so a
    crash keeps what was sent), in backfill mode: most of it is older than the late window."""
    totals = TrafficTotals()
    batch_size = min(BATCH_SIZE, settings.PERCALL_INGEST_MAX_EVENTS)
    batches = traffic_batches(
        seed=seed, plans=plans, window=window, events=events, batch_size=batch_size
    )
    for batch in batches:
        result = events_ingest(
            body=_encoder.encode({"events": batch}),
            content_type=CONTENT_JSON,
            headers={},
            caller=DEMO_CALLER,
            backfill=True,
        )
        totals.sent += len(batch)
        totals.accepted += result.accepted
        totals.duplicates += result.duplicates
        totals.conflicts += result.conflicts
        totals.rejected += result.rejected
        totals.batches += 1
        for outcome in result.results:
            if outcome.status != DUPLICATE and len(totals.problems) < 5:
                totals.problems.append(f"{outcome.id}: {outcome.status} {outcome.message}")
    return totals


def demo_ingest_key_issue() -> IssuedApiKey:
    """A new operator-wide key for trying the API (keys are shown only once, so each call
    makes a fresh one)."""
    return api_key_create(name=DEMO_KEY_NAME, scopes=["ingest", "read"])


@dataclass(frozen=True)
class DemoInfo:
    admin_login: str | None  # "admin / admin" while the demo superuser keeps its demo password
    tenant: str | None  # a tenant to try the API with
    example_body: str  # one event for that tenant, as an ingestion request body
    finalized_invoices: int = 0
    draft_invoices: int = 0
    statements: int = 0
    statements_period: str = ""  # the month last closed, YYYY-MM
    open_findings: int = 0  # leakage findings open for that month
    throttled_tenant: str | None = None  # a partner over a throttling budget
    this_month: str = ""  # YYYY-MM
    partner_login: str | None = None  # "partner / partner" while it keeps its demo password
    partner_tenants: tuple[str, ...] = ()
    finance_login: str | None = None  # "finance / finance" while it keeps its demo password


def demo_info_gather() -> DemoInfo:
    """What ``make run`` shows a newcomer: the demo login if it still works and a ready-made
    ingestion body for a demo tenant (a fresh id each time, the timestamp left to the server)."""
    admin = get_user_model().objects.filter(username=DEMO_ADMIN_USERNAME).first()
    login = None
    if admin is not None and admin.check_password(DEMO_ADMIN_PASSWORD):
        login = f"{DEMO_ADMIN_USERNAME} / {DEMO_ADMIN_PASSWORD}"
    partner = get_user_model().objects.filter(username=DEMO_PARTNER_USERNAME).first()
    partner_login: str | None = None
    partner_tenants: tuple[str, ...] = ()
    if partner is not None and partner.check_password(DEMO_PARTNER_PASSWORD):
        partner_login = f"{DEMO_PARTNER_USERNAME} / {DEMO_PARTNER_PASSWORD}"
        partner_tenants = tuple(
            partner.memberships.order_by("tenant__name").values_list("tenant__name", flat=True)
        )
    finance = get_user_model().objects.filter(username=DEMO_FINANCE_USERNAME).first()
    finance_login = None
    if finance is not None and finance.check_password(DEMO_FINANCE_PASSWORD):
        finance_login = f"{DEMO_FINANCE_USERNAME} / {DEMO_FINANCE_PASSWORD}"
    tenants = tenant_list(scope_tenant_id=None)
    tenant = tenants.filter(external_id__in=_demo_ids()).order_by("registered_at").first()
    tenant = tenant or tenants.first()
    invoices = invoice_list(scope_tenant_id=None)
    period = statement_period_last_closed()
    counts: dict[str, Any] = {
        "finalized_invoices": invoices.filter(status="finalized").count(),
        "draft_invoices": invoices.filter(status="draft").count(),
        "statements": statement_list(period_start=period.start).count(),
        "statements_period": period.label,
        "open_findings": Finding.objects.filter(
            period_start=period.start, status=Finding.Status.OPEN
        ).count(),
        "throttled_tenant": BudgetPeriod.objects.filter(
            over_limit=True, budget__scope=Budget.Scope.TENANT
        )
        .values_list("budget__tenant__external_id", flat=True)
        .first(),
        "this_month": f"{timezone.now():%Y-%m}",
        "partner_login": partner_login,
        "partner_tenants": partner_tenants,
        "finance_login": finance_login,
    }
    if tenant is None:
        return DemoInfo(admin_login=login, tenant=None, example_body="", **counts)
    input_tokens, output_tokens = 1200, 300
    event = {
        "id": f"curl-{secrets.token_hex(6)}",
        "tenant": tenant.external_id,
        "type": "llm.call",
        "feature": "summarize",
        "endpoint": FEATURES["summarize"].endpoint,
        "provider": MODELS["gpt-4o-mini"].provider,
        "model": "gpt-4o-mini",
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost": llm_cost(
            model="gpt-4o-mini",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=0,
        ),
        "cost_currency": "USD",
    }
    body = _encoder.encode({"events": [event]}).decode()
    return DemoInfo(admin_login=login, tenant=tenant.external_id, example_body=body, **counts)
