"""Signing in to and out of the console: ``sign_in_check`` (with its lockout), then Django's
session login. Only finance users are let in; anyone else is told so without a session."""

from typing import cast

from django.contrib.auth import login, logout
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from apps.console.access import is_finance
from apps.console.forms import SignInForm
from apps.tenants.services.sign_in import SignInFailed, SignInLocked, sign_in_check


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if safe and target.startswith("/console/") else reverse("console:dashboard")


@csrf_protect
@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    if request.method == "GET" and is_finance(request.user):
        return HttpResponseRedirect(_next(request))
    form = SignInForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            user = cast(
                User,
                sign_in_check(
                    request=request,
                    username=form.cleaned_data["username"],
                    password=form.cleaned_data["password"],
                ),
            )
        except (SignInLocked, SignInFailed) as exc:
            form.add_error(exc.field, exc.message)
            status = exc.status_code
        else:
            if is_finance(user):
                login(request, user)
                return HttpResponseRedirect(_next(request))
            form.add_error(None, "This account has no access to the finance console.")
            status = 403
    elif request.method == "POST":
        status = 400
    return render(
        request, "console/sign_in.html", {"form": form, "next": _next(request)}, status=status
    )


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponseRedirect(reverse("console:login"))
