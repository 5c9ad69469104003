"""Webhook endpoints of the acting tenant and their delivery log; adding one shows its
signing secret once; disabling one stops deliveries to it."""

from uuid import UUID

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from apps.alerts.errors import WebhookEndpointNotFound
from apps.alerts.models import WebhookEndpoint
from apps.alerts.services.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_disable,
    webhook_endpoint_get,
    webhook_redeliver,
    webhook_secret_rotate,
)
from apps.core.errors import ApplicationError
from apps.portal.access import Portal, Role, portal_view
from apps.portal.forms import WebhookForm
from apps.portal.selectors import (
    webhook_delivery_get,
    webhook_delivery_list,
    webhook_endpoint_list,
)
from apps.portal.views.common import page


def _render(
    request: HttpRequest, portal: Portal, form: WebhookForm, **extra: object
) -> HttpResponse:
    context = {
        "endpoints": list(webhook_endpoint_list(tenant_id=portal.tenant.id)),
        "form": form,
        "may_manage": portal.may(Role.BILLING),
        **extra,
    }
    status = 400 if form.errors else 200
    return page(request, portal, "portal/webhooks.html", context, section="webhooks", status=status)


@require_http_methods(["GET", "POST"])
@portal_view()
def webhooks(request: HttpRequest, portal: Portal) -> HttpResponse:
    if request.method != "POST":
        return _render(request, portal, WebhookForm())
    if not portal.may(Role.BILLING):
        raise PermissionDenied("needs the billing role")
    form = WebhookForm(request.POST)
    if not form.is_valid():
        return _render(request, portal, form)
    try:
        endpoint = webhook_endpoint_create(tenant_id=portal.tenant.id, **form.cleaned_data)
    except ApplicationError as exc:
        form.add_error(None, exc.message)
        return _render(request, portal, form)
    return _render(request, portal, WebhookForm(), created=endpoint)


def _endpoint(portal: Portal, endpoint_id: UUID) -> WebhookEndpoint:
    try:
        return webhook_endpoint_get(endpoint_id=endpoint_id, scope_tenant_id=portal.tenant.id)
    except WebhookEndpointNotFound as exc:
        raise Http404("no such endpoint") from exc


def _detail(
    request: HttpRequest, portal: Portal, endpoint: WebhookEndpoint, **extra: object
) -> HttpResponse:
    context = {
        "endpoint": endpoint,
        "deliveries": webhook_delivery_list(endpoint=endpoint),
        "may_manage": portal.may(Role.BILLING),
        **extra,
    }
    return page(request, portal, "portal/webhook.html", context, section="webhooks")


@require_safe
@portal_view()
def webhook_detail(request: HttpRequest, portal: Portal, endpoint_id: UUID) -> HttpResponse:
    return _detail(request, portal, _endpoint(portal, endpoint_id))


@require_POST
@portal_view(role=Role.BILLING)
def webhook_rotate(request: HttpRequest, portal: Portal, endpoint_id: UUID) -> HttpResponse:
    """A new signing secret, shown in this answer only; the old one signs beside it for 24
    hours so the receiver can switch without losing a message."""
    endpoint = webhook_secret_rotate(endpoint_id=_endpoint(portal, endpoint_id).id)
    return _detail(request, portal, endpoint, rotated=True)


@require_POST
@portal_view(role=Role.BILLING)
def webhook_redeliver_one(
    request: HttpRequest, portal: Portal, endpoint_id: UUID, delivery_id: UUID
) -> HttpResponse:
    endpoint = _endpoint(portal, endpoint_id)
    delivery = webhook_delivery_get(endpoint=endpoint, delivery_id=delivery_id)
    webhook_redeliver(delivery_id=delivery.id)
    messages.success(request, f"Delivery {delivery.message.msg_id} is queued to be sent again.")
    return redirect("portal:webhook", endpoint_id=endpoint.id)


@require_POST
@portal_view(role=Role.BILLING)
def webhook_disable(request: HttpRequest, portal: Portal, endpoint_id: UUID) -> HttpResponse:
    endpoint = _endpoint(portal, endpoint_id)
    webhook_endpoint_disable(endpoint_id=endpoint.id, reason="disabled in the portal")
    messages.success(request, f"Endpoint {endpoint.url} is disabled.")
    return redirect("portal:webhook", endpoint_id=endpoint.id)
