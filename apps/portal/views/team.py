"""The acting tenant's team: who has access and with which role; owners invite people, change
roles and remove members (through ``tenants.services.memberships``, scoped to the tenant)."""

from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.errors import ApplicationError
from apps.portal.access import Portal, Role, portal_view
from apps.portal.forms import ROLE_CHOICES, InviteForm, RoleForm
from apps.portal.selectors import team_list
from apps.portal.views.common import page
from apps.tenants.errors import MembershipNotFound
from apps.tenants.services.memberships import (
    membership_invite,
    membership_remove,
    membership_role_set,
)


def _render(
    request: HttpRequest, portal: Portal, form: InviteForm, status: int = 200
) -> HttpResponse:
    context = {
        "members": list(team_list(tenant_id=portal.tenant.id)),
        "form": form,
        "roles": [value for value, _ in ROLE_CHOICES],
        "may_manage": portal.may(Role.OWNER),
    }
    return page(request, portal, "portal/team.html", context, section="team", status=status)


@require_http_methods(["GET", "HEAD", "POST"])
@portal_view()
def team(request: HttpRequest, portal: Portal) -> HttpResponse:
    if request.method != "POST":
        return _render(request, portal, InviteForm())
    if not portal.may(Role.OWNER):
        raise PermissionDenied("needs the owner role")
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _render(request, portal, form, status=400)
    try:
        membership = membership_invite(
            tenant=portal.tenant,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            invited_by=request.user,  # type: ignore[arg-type]
            base_url=request.build_absolute_uri("/").rstrip("/"),
        )
    except ApplicationError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return _render(request, portal, form, status=exc.status_code)
    messages.success(
        request,
        f"{membership.user.email} is invited as {membership.role}: we emailed them a link.",
    )
    return redirect("portal:team")


def _changed(request: HttpRequest, action: Callable[[], None]) -> HttpResponse:
    """Run a change on a member; a foreign or unknown id is a 404, a refusal a message."""
    try:
        action()
    except MembershipNotFound as exc:
        raise Http404("no such member") from exc
    except ApplicationError as exc:
        text = exc.message.removeprefix(f"{exc.field}: ") if exc.field else exc.message
        messages.error(request, text[:1].upper() + text[1:])
        return redirect("portal:team")
    return redirect("portal:team")


@require_POST
@portal_view(role=Role.OWNER)
def member_role(request: HttpRequest, portal: Portal, membership_id: int) -> HttpResponse:
    form = RoleForm(request.POST)
    # The id is checked first, so a foreign one is a 404 whatever was posted with it.
    role = form.cleaned_data["role"] if form.is_valid() else request.POST.get("role", "")

    def change() -> None:
        membership = membership_role_set(
            membership_id=membership_id, role=role, scope_tenant_id=portal.tenant.id
        )
        messages.success(request, f"{membership.user.get_username()} is now {membership.role}.")

    return _changed(request, change)


@require_POST
@portal_view(role=Role.OWNER)
def member_remove(request: HttpRequest, portal: Portal, membership_id: int) -> HttpResponse:
    def remove() -> None:
        membership = membership_remove(
            membership_id=membership_id, scope_tenant_id=portal.tenant.id
        )
        messages.success(
            request,
            f"{membership.user.get_username()} no longer has access to {portal.tenant.name}.",
        )

    return _changed(request, remove)
