"""Who may use the finance console: active staff users in the ``finance`` group (superusers
too, as everywhere in Django). Anonymous visitors are sent to the console's sign-in page; any
other signed-in user gets a 403 page, never a redirect loop."""

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

FINANCE_GROUP = "finance"


def is_finance(user: User | AnonymousUser) -> bool:
    """True for an active staff user in the finance group, or a superuser."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return user.is_staff and user.groups.filter(name=FINANCE_GROUP).exists()


def finance_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The view for finance users; a redirect to sign-in for anonymous ones; 403 otherwise."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            query = urlencode({"next": request.get_full_path()})
            return HttpResponseRedirect(f"{reverse('console:login')}?{query}")
        if not is_finance(request.user):
            return render(request, "console/forbidden.html", status=403)
        return view(request, *args, **kwargs)

    return guarded
