"""Who is acting in the portal, and for which tenant: resolved in one place for every view.

A person belongs to tenants through ``tenants.Membership`` and acts in exactly one at a time,
the one chosen in the switcher (kept in the session). Every portal view is wrapped in
``portal_view``, which signs the person in if needed, resolves the membership from the session,
refuses roles that may not do what the view does (403), and hands the view a ``Portal`` whose
``tenant`` is what every selector call is scoped to."""

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from apps.portal.selectors import membership_list
from apps.tenants.models import Membership, Tenant

SESSION_TENANT = "portal_tenant_id"
Role = Membership.Role
# What each role may do, from least to most: a viewer reads; billing also buys packs and
# manages keys and webhooks; an owner also manages the team.
RANK = {Role.VIEWER: 0, Role.BILLING: 1, Role.OWNER: 2}


@dataclass(frozen=True)
class Portal:
    """The person, the tenant they act in now, their role there, and all their memberships
    (for the switcher)."""

    membership: Membership
    memberships: list[Membership]

    @property
    def tenant(self) -> Tenant:
        return self.membership.tenant

    @property
    def role(self) -> str:
        return self.membership.role

    def may(self, role: str) -> bool:
        return RANK[Role(self.role)] >= RANK[Role(role)]


def portal_resolve(request: HttpRequest) -> Portal | None:
    """The signed-in person's current membership: the session's choice when it is still one of
    theirs, else their only membership; None when they have none or must choose."""
    memberships = membership_list(user_id=request.user.pk)
    chosen = request.session.get(SESSION_TENANT)
    for membership in memberships:
        if str(membership.tenant_id) == chosen:
            return Portal(membership, memberships)
    if len(memberships) == 1:
        request.session[SESSION_TENANT] = str(memberships[0].tenant_id)
        return Portal(memberships[0], memberships)
    return None


def portal_view(role: str = Role.VIEWER) -> Callable:
    """Wrap a view ``view(request, portal, **kwargs)``: signed in, acting in one tenant, and
    holding at least ``role`` there (else 403)."""

    def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path(), "portal:login")
            portal = portal_resolve(request)
            if portal is None:
                if membership_list(user_id=request.user.pk):
                    return redirect("portal:switch")
                return render(request, "portal/no_membership.html", status=403)
            if not portal.may(role):
                raise PermissionDenied(f"needs the {role} role")
            request.portal = portal  # type: ignore[attr-defined]
            return view(request, portal, **kwargs)

        return wrapped

    return wrap
