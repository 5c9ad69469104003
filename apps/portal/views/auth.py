"""Signing in and out, choosing the tenant to act in, and password reset (Django's views
with our templates)."""

from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from apps.portal.access import SESSION_TENANT
from apps.portal.forms import SignInForm
from apps.portal.selectors import membership_list
from apps.tenants.services.sign_in import SignInFailed, SignInLocked, sign_in_check


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if safe and target.startswith("/portal/") else str(reverse_lazy("portal:home"))


@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    form = SignInForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            user = sign_in_check(
                request=request,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password"],
            )
        except (SignInLocked, SignInFailed) as exc:
            form.add_error(None, exc.message)
            status = exc.status_code
        else:
            # sign_in_check answers the configured user model, which login() takes.
            login(request, user)  # type: ignore[arg-type]
            return redirect(_next_url(request))
    elif request.method == "POST":
        status = 400
    context = {"form": form, "next": _next_url(request)}
    return render(request, "portal/login.html", context, status=status)


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect("portal:login")


@require_http_methods(["GET", "POST"])
def switch(request: HttpRequest) -> HttpResponse:
    """Choose the tenant to act in, among the person's own memberships only."""
    if not request.user.is_authenticated:
        return redirect("portal:login")
    memberships = membership_list(user_id=request.user.pk)
    if request.method == "POST":
        chosen = request.POST.get("tenant", "")
        for membership in memberships:
            if str(membership.tenant_id) == chosen:
                request.session[SESSION_TENANT] = chosen
                messages.info(request, f"You are now acting for {membership.tenant.name}.")
                return redirect("portal:home")
        return render(
            request,
            "portal/switch.html",
            {"memberships": memberships, "error": "Choose one of your own tenants."},
            status=404,
        )
    if not memberships:
        return render(request, "portal/no_membership.html", status=403)
    return render(request, "portal/switch.html", {"memberships": memberships})


password_reset = auth_views.PasswordResetView.as_view(
    template_name="portal/registration/password_reset_form.html",
    email_template_name="portal/registration/password_reset_email.txt",
    subject_template_name="portal/registration/password_reset_subject.txt",
    success_url=reverse_lazy("portal:password_reset_done"),
)
password_reset_done = auth_views.PasswordResetDoneView.as_view(
    template_name="portal/registration/password_reset_done.html"
)
password_reset_confirm = auth_views.PasswordResetConfirmView.as_view(
    template_name="portal/registration/password_reset_confirm.html",
    success_url=reverse_lazy("portal:password_reset_complete"),
)
password_reset_complete = auth_views.PasswordResetCompleteView.as_view(
    template_name="portal/registration/password_reset_complete.html"
)
