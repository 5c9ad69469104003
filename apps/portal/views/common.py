"""What every portal page shares: rendering with the acting tenant and the nav."""

from typing import Any
from zoneinfo import ZoneInfo

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from apps.portal.access import Portal

NAV = (
    ("home", "Home"),
    ("usage", "Usage"),
    ("invoices", "Invoices"),
    ("credits", "Credits"),
    ("keys", "API keys"),
    ("webhooks", "Webhooks"),
    ("team", "Team"),
)


def page(
    request: HttpRequest,
    portal: Portal,
    template: str,
    context: dict[str, Any],
    *,
    section: str,
    status: int = 200,
) -> HttpResponse:
    """Render a portal page: ``portal`` (tenant, role, memberships) and the nav come along,
    and dates and times show in the tenant's timezone (its periods are local months)."""
    with timezone.override(ZoneInfo(portal.tenant.timezone)):
        return render(
            request,
            template,
            {"portal": portal, "tenant": portal.tenant, "nav": NAV, "section": section, **context},
            status=status,
        )
