"""API keys bound to the acting tenant: list, create (the plaintext shown once), revoke."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.errors import ApplicationError
from apps.portal.access import Portal, Role, portal_view
from apps.portal.forms import ApiKeyForm
from apps.portal.selectors import api_key_get, api_key_list
from apps.portal.views.common import page
from apps.tenants.services.api_keys import api_key_create, api_key_revoke


def _render(
    request: HttpRequest, portal: Portal, form: ApiKeyForm, **extra: object
) -> HttpResponse:
    context = {
        "keys": list(api_key_list(tenant_id=portal.tenant.id)),
        "form": form,
        "may_manage": portal.may(Role.BILLING),
        **extra,
    }
    status = 400 if form.errors else 200
    return page(request, portal, "portal/keys.html", context, section="keys", status=status)


@require_http_methods(["GET", "POST"])
@portal_view()
def keys(request: HttpRequest, portal: Portal) -> HttpResponse:
    if request.method != "POST":
        return _render(request, portal, ApiKeyForm())
    if not portal.may(Role.BILLING):
        raise PermissionDenied("needs the billing role")
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return _render(request, portal, form)
    try:
        issued = api_key_create(
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            tenant=portal.tenant,
        )
    except ApplicationError as exc:
        form.add_error(None, exc.message)
        return _render(request, portal, form)
    # Shown in this answer only, never stored or put in the session: a reload does not show it.
    return _render(request, portal, ApiKeyForm(), issued=issued)


@require_POST
@portal_view(role=Role.BILLING)
def key_revoke(request: HttpRequest, portal: Portal, prefix: str) -> HttpResponse:
    key = api_key_get(tenant_id=portal.tenant.id, prefix=prefix)
    api_key_revoke(prefix=key.prefix)
    messages.success(request, f"Key {key.name} ({key.prefix}…) is revoked.")
    return redirect("portal:keys")
