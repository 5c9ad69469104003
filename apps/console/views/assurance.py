"""Revenue assurance: the month's reconciliation report and the findings queue, where finance
acknowledges findings or resolves them with a reason (htmx swaps the row; without JavaScript
the form posts and the queue reloads)."""

from urllib.parse import urlsplit

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.assurance.errors import FindingNotFound
from apps.assurance.models import Finding
from apps.assurance.selectors import finding_get, leakage_report
from apps.assurance.services.findings import finding_acknowledge, finding_resolve
from apps.console.access import finance_required
from apps.console.forms import FindingFilterForm, month_of
from apps.core.errors import ApplicationError

PAGE_SIZE = 50


@require_GET
@finance_required
def reconciliation(request: HttpRequest) -> HttpResponse:
    form, period = month_of(request.GET)
    if period is None:
        return render(request, "console/reconciliation.html", {"form": form}, status=400)
    report = leakage_report(period_start=period.start)
    return render(
        request,
        "console/reconciliation.html",
        {"form": form, "period": period, "report": report},
    )


@require_GET
@finance_required
def findings(request: HttpRequest) -> HttpResponse:
    form = FindingFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "console/findings.html", {"form": form}, status=400)
    rows = form.findings()
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "console/findings.html",
        {"form": form, "page": page, "query": query.urlencode()},
    )


def _act(request: HttpRequest, finding_id: str, action: str) -> Finding:
    actor = request.user.get_username()
    reason = request.POST.get("reason", "")
    if action == "acknowledge":
        return finding_acknowledge(finding_id=finding_id, actor=actor, reason=reason)
    return finding_resolve(finding_id=finding_id, actor=actor, reason=reason)


@require_POST
@finance_required
def finding_act(request: HttpRequest, finding_id: str, action: str) -> HttpResponse:
    """Acknowledge or resolve one finding through the assurance services, as the signed-in
    user. An htmx request gets the updated row back; a plain form post goes back to the queue."""
    htmx = request.headers.get("HX-Request") == "true"
    try:
        finding = finding_get(finding_id=finding_id)
        if action not in ("acknowledge", "resolve"):
            raise FindingNotFound(f"action: {action!r} is not acknowledge or resolve")
    except FindingNotFound:
        return render(request, "console/not_found.html", status=404)
    error = None
    try:
        finding = _act(request, finding_id, action)
    except ApplicationError as exc:
        error = exc.message
    if htmx:
        return render(request, "console/_finding_row.html", {"f": finding, "error": error})
    if error:
        messages.error(request, f"{finding.category} {finding.subject}: {error}")
    else:
        messages.success(request, f"{finding.category} {finding.subject}: {finding.status}.")
    # Back to the queue as it was filtered; never to another address.
    back = urlsplit(request.POST.get("back", ""))
    target = reverse("console:findings")
    if back.path == target and not back.netloc and not back.scheme:
        target = f"{target}?{back.query}" if back.query else target
    return HttpResponseRedirect(target)
