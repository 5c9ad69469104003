"""Every URL pattern of the project, from Django's resolver, and how to fill its parameters.

A route's parameters are filled from ``FOREIGN`` (tenant B's object the parameter names), or
from ``NOT_TENANT_DATA`` (values that name no tenant's data: a metric, an action, a CSV kind,
a password-reset token). A parameter in neither fails ``test_every_route_parameter_is_known``,
and a route that takes no tenant-owned id must be listed in ``NO_TENANT_ID`` (the admin's
routes aside, which are staff-only as a whole), so that no new URL escapes the walk.
"""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.apps import apps as django_apps
from django.contrib.contenttypes.models import ContentType
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern

from apps.billing.models import Invoice
from apps.tenants.models import Tenant
from tests.security.world import Side, World

Fill = Callable[[World, Side, "Route"], Any]


def _admin_object(world: World, side: Side, route: "Route") -> Any:
    """The admin's object id: the side's row of the admin's model where it has one."""
    match = re.match(r"admin/(\w+)/(\w+)/", route.text)
    model = django_apps.get_model(match[1], match[2]) if match else None
    if model is Tenant:
        return side.tenant.pk
    if model is not None and any(f.name == "tenant" for f in model._meta.fields):
        row = model._default_manager.filter(tenant=side.tenant).first()
        if row is not None:
            return row.pk
    return side.invoice.pk


# Parameter -> the object of a side (A's for the controls, B's for the walk) it names.
FOREIGN: dict[str, Fill] = {
    "external_id": lambda w, s, r: s.tenant.external_id,
    "subscription_id": lambda w, s, r: s.subscription.id,
    # A finalize route gets the draft: only the tenant scope keeps it from finalizing.
    "invoice_id": lambda w, s, r: s.draft.id if "finalize" in r.text else s.invoice.id,
    "finding_id": lambda w, s, r: s.finding.id,
    "endpoint_id": lambda w, s, r: s.endpoint.id,
    "delivery_id": lambda w, s, r: s.delivery.id,
    "budget_id": lambda w, s, r: s.budget.id,
    "anomaly_id": lambda w, s, r: s.anomaly.id,
    "prefix": lambda w, s, r: s.key.api_key.prefix,
    "membership_id": lambda w, s, r: s.membership.id,
    # Statements are the operator's (cost centers', not tenants'): there is one for both.
    "statement_id": lambda w, s, r: w.statement.id,
    "object_id": _admin_object,
    "content_type_id": lambda w, s, r: ContentType.objects.get_for_model(Invoice).id,
    "id": lambda w, s, r: s.owner.pk,  # admin: a user's password change
}
# Parameters that name no tenant's data, with the values walked.
NOT_TENANT_DATA: dict[str, tuple[str, ...]] = {
    "metric": ("cost",),
    "action": ("finalize", "void", "mark-paid", "acknowledge", "resolve", "reopen"),
    "kind": ("gl", "focus"),
    "uidb64": ("MQ",),
    "token": ("set-password",),
    "app_label": ("billing",),
    "url": ("nowhere/",),
}
# Routes that take no tenant-owned id, and why each is walked anyway (B's data must not
# show in their answers, whatever ``?tenant=`` they are given).
NO_TENANT_ID = {
    "healthz": "probe: status only",
    "readyz": "probe: status only",
    "metrics": "Prometheus scrape: table sizes, never labelled by tenant",
    "api/schema/": "the OpenAPI document",
    "api/docs/": "Swagger UI",
    "portal/": "home of the acting tenant",
    "portal/login/": "sign-in",
    "portal/logout/": "sign-out",
    "portal/tenants/": "the switcher: the person's own memberships",
    "portal/password-reset/": "password reset",
    "portal/password-reset/sent/": "password reset",
    "portal/password-reset/done/": "password reset",
    "portal/usage/": "the acting tenant's usage",
    "portal/usage.csv": "the acting tenant's usage",
    "portal/invoices/": "the acting tenant's invoices",
    "portal/credits/": "the acting tenant's credits",
    "portal/credits/buy/": "buys for the acting tenant",
    "portal/keys/": "the acting tenant's keys",
    "portal/webhooks/": "the acting tenant's endpoints",
    "portal/team/": "the acting tenant's team",
    "console/": "finance only",
    "console/accuracy/": "finance only",
    "console/login/": "sign-in",
    "console/logout/": "sign-out",
    "console/assurance/": "finance only",
    "console/assurance/findings/": "finance only",
    "console/invoices/": "finance only",
    "console/chargeback/": "finance only",
    "console/chargeback/draft/": "finance only",
    "console/costs/": "finance only",
    "console/review/": "finance only",
    "console/review.pdf": "finance only",
    "api/v1/audit": "?tenant= filter; a tenant-bound key reads its own tenant's entries",
    "api/v1/tenants": "lists the key's own tenant",
    "api/v1/events": "ingests for the key's own tenant",
    "api/v1/usage": "?tenant= filter",
    "api/v1/usage/check": "?tenant= filter",
    "api/v1/catalog": "operator configuration, the same for all",
    "api/v1/catalog/apply": "operator only",
    "api/v1/subscriptions": "?tenant= filter, tenant in the body",
    "api/v1/invoices": "?tenant= filter",
    "api/v1/invoices/preview": "?tenant= filter",
    "api/v1/analytics/full_cost_per_call": "operator only",
    "api/v1/statements": "operator only",
    "api/v1/statements/run": "operator only",
    "api/v1/exports/focus": "operator only",
    "api/v1/exports/chargeback-gl": "operator only",
    "api/v1/webhooks/endpoints": "tenant in the body",
    "api/v1/budgets": "?tenant= filter, tenant in the body",
    "api/v1/anomalies": "operator only",
    "api/v1/forecasts": "operator only",
    "api/v1/forecasts/accuracy": "operator only",
    "api/v1/leakage/report": "operator only",
    "api/v1/leakage/findings": "operator only",
    "api/v1/leakage/scans": "operator only",
    "api/v1/analytics/<str:metric>": "operator only",
    "console/chargeback/<str:kind>.csv": "finance only",
}
PUBLIC = {
    "healthz",
    "readyz",
    "metrics",
    "api/schema/",
    "api/docs/",
    "portal/login/",
    "portal/password-reset/",
    "portal/password-reset/sent/",
    "portal/password-reset/done/",
    "portal/password-reset/<uidb64>/<token>/",
    "console/login/",
    "admin/login/",
}

_ROUTE_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<parameter>[^>]+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<parameter>\w+)>[^)]*\)")


@dataclass(frozen=True)
class Route:
    """One URL pattern: its whole route text, its parts (one per resolver level) and view."""

    text: str
    parts: tuple[Any, ...]
    pattern: URLPattern

    @property
    def surface(self) -> str:
        for prefix in ("api/v1/", "portal/", "console/", "admin/"):
            if self.text.startswith(prefix):
                return prefix
        return "public"

    @property
    def parameters(self) -> list[str]:
        names: list[str] = []
        for part in self.parts:
            if isinstance(part, RoutePattern):
                names += [m["parameter"] for m in _ROUTE_PARAM.finditer(str(part))]
            elif isinstance(part, RegexPattern):
                names += list(part.regex.groupindex)
        return names

    @property
    def foreign(self) -> list[str]:
        """The parameters that name tenant-owned (or operator-owned) objects."""
        return [name for name in self.parameters if name in FOREIGN]

    def path(self, values: dict[str, Any]) -> str:
        """The URL with ``values`` in place of the parameters."""
        pieces = []
        for part in self.parts:
            text = str(part)
            if isinstance(part, RoutePattern):
                text = _ROUTE_PARAM.sub(lambda m: str(values[m["parameter"]]), text)
            else:
                text = _REGEX_GROUP.sub(lambda m: str(values[m["parameter"]]), text)
                text = text.removeprefix("^").removesuffix("$")
            pieces.append(text)
        return "/" + "".join(pieces)


def routes() -> list[Route]:
    found: list[Route] = []

    def walk(patterns: list, parts: tuple) -> None:
        for pattern in patterns:
            here = (*parts, pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, here)
            else:
                found.append(Route("".join(str(p) for p in here), here, pattern))

    walk(get_resolver().url_patterns, ())
    return found


def unknown_value(name: str) -> Any:
    """A value of the parameter's shape that names nothing."""
    if name == "membership_id" or name == "id":
        return 987654321
    if name in ("external_id", "prefix"):
        return "nobody00"
    return uuid.uuid4()
