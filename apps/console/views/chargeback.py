"""Chargeback: the month's statements by cost center, drafting and issuing them (issued by
the signed-in user), the PDF, GL CSV and FOCUS downloads, and the shared-cost pools with a
preview of how they would be allocated."""

from datetime import date
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.chargeback.errors import StatementNotFound
from apps.chargeback.selectors import statement_get, statement_list
from apps.chargeback.services.exports import focus_csv, gl_csv
from apps.chargeback.services.pdf import statement_pdf_bytes
from apps.chargeback.services.statements import statement_issue, statements_run
from apps.console.access import finance_required
from apps.console.forms import ConfirmForm, month_of
from apps.console.pools import allocation_preview
from apps.core.errors import ApplicationError


@require_GET
@finance_required
def statements(request: HttpRequest) -> HttpResponse:
    form, period = month_of(request.GET)
    if period is None:
        return render(request, "console/chargeback.html", {"form": form}, status=400)
    return render(
        request,
        "console/chargeback.html",
        {
            "form": form,
            "period": period,
            "statements": list(statement_list(period_start=period.start)),
            "preview": allocation_preview(period=period),
            "currency": settings.PERCALL_OPERATOR_CURRENCY,
        },
    )


def _back(period: date) -> HttpResponseRedirect:
    return HttpResponseRedirect(f"{reverse('console:chargeback')}?period={period:%Y-%m}")


@require_POST
@finance_required
def statements_draft(request: HttpRequest) -> HttpResponse:
    """Draft or refresh the month's statements (issued ones are never touched)."""
    form, period = month_of(request.POST)
    if period is None:
        return render(request, "console/chargeback.html", {"form": form}, status=400)
    report = statements_run(period=period)
    messages.success(
        request,
        f"{len(report.drafted)} statement(s) drafted or refreshed; "
        f"{len(report.issued_differs)} issued statement(s) differ from the cost now.",
    )
    return _back(period.start)


@require_POST
@finance_required
def statement_act(request: HttpRequest, statement_id: UUID) -> HttpResponse:
    try:
        statement = statement_get(statement_id=statement_id)
    except StatementNotFound:
        return render(request, "console/not_found.html", status=404)
    if not ConfirmForm(request.POST).is_valid():
        messages.error(request, "I confirm: tick the box to issue the statement.")
        return _back(statement.period_start)
    try:
        issued = statement_issue(statement_id=statement.id, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        who = request.user.get_username() if isinstance(request.user, User) else ""
        messages.success(request, f"Statement {issued.number} issued by {who}.")
    return _back(statement.period_start)


@require_GET
@finance_required
def statement_pdf(request: HttpRequest, statement_id: UUID) -> HttpResponse:
    try:
        statement = statement_get(statement_id=statement_id)
    except StatementNotFound:
        return render(request, "console/not_found.html", status=404)
    response = HttpResponse(statement_pdf_bytes(statement), content_type="application/pdf")
    name = statement.number or f"draft-{statement.id}"
    response["Content-Disposition"] = f'attachment; filename="statement-{name}.pdf"'
    return response


@require_GET
@finance_required
def export(request: HttpRequest, kind: str) -> HttpResponse:
    if kind not in ("focus", "gl"):
        return render(request, "console/not_found.html", status=404)
    form, period = month_of(request.GET)
    if period is None:
        return render(request, "console/chargeback.html", {"form": form}, status=400)
    text = (
        focus_csv(period_start=period.start)
        if kind == "focus"
        else gl_csv(period_start=period.start)
    )
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    name = "focus" if kind == "focus" else "chargeback-gl"
    response["Content-Disposition"] = f'attachment; filename="{name}-{period.label}.csv"'
    return response
