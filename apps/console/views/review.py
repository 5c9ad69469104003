"""The one-page quarterly API program review: adoption, revenue, efficiency and next steps,
as a page and as a PDF (WeasyPrint through billing's ``pdf_from_html``)."""

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET

from apps.assurance.models import Finding
from apps.assurance.selectors import finding_list, leakage_report
from apps.billing.services.pdf import pdf_from_html
from apps.console.access import finance_required
from apps.console.forms import QuarterForm
from apps.console.selectors import CostPeriod, growth_pct
from apps.console.views.dashboard import program_context

ZERO = Decimal(0)


def _next_steps(last: dict[str, Any], open_findings: int, margin: Decimal) -> list[str]:
    """What the numbers ask for, in plain words."""
    steps = []
    adoption = last["adoption"]
    if adoption.never_called:
        steps.append(
            f"Activate the {adoption.never_called} registered partner(s) who never made a call."
        )
    idle = adoption.registered - adoption.active
    if idle > adoption.never_called:
        steps.append(f"Re-engage {idle - adoption.never_called} partner(s) idle in the last month.")
    if open_findings:
        steps.append(f"Work the {open_findings} unresolved revenue-assurance finding(s).")
    if last["revenue"].drafts:
        steps.append(f"Finalize the {last['revenue'].drafts} invoice(s) still in draft.")
    if margin < 0:
        steps.append("The program ran at a loss: review prices against the cost per call.")
    return steps or ["Nothing pressing: keep the current plan."]


def review_context(months: list[CostPeriod]) -> dict[str, Any]:
    per_month = [
        {**program_context(p), "accuracy": leakage_report(period_start=p.start)["total"]}
        for p in months
    ]
    first, last = per_month[0], per_month[-1]
    revenue = sum((m["math"].revenue for m in per_month), ZERO)
    cost = sum((m["math"].cost for m in per_month), ZERO)
    calls = sum(m["math"].calls for m in per_month)
    open_findings = (
        finding_list()
        .filter(period_start__gte=months[0].start, period_start__lt=months[-1].end)
        .exclude(status=Finding.Status.RESOLVED)
        .count()
    )
    margin = revenue - cost
    start = months[0].start
    return {
        "label": f"{start.year} Q{(start.month - 1) // 3 + 1}",
        "code": f"{start.year}-Q{(start.month - 1) // 3 + 1}",
        "months": per_month,
        "currency": settings.PERCALL_OPERATOR_CURRENCY,
        "registered_start": first["adoption"].previous_registered,
        "registered_end": last["adoption"].registered,
        "registered_growth_pct": growth_pct(
            last["adoption"].registered, first["adoption"].previous_registered
        ),
        "active_end": last["adoption"].active,
        "revenue": revenue,
        "cost": cost,
        "calls": calls,
        "margin": margin,
        "margin_pct": (margin * 100 / revenue).quantize(Decimal("0.1")) if revenue else None,
        "open_findings": open_findings,
        "next_steps": _next_steps(last, open_findings, margin),
        "operator": settings.PERCALL_OPERATOR_NAME,
    }


@require_GET
@finance_required
def review(request: HttpRequest) -> HttpResponse:
    form = QuarterForm(request.GET)
    if not form.is_valid():
        return render(request, "console/review.html", {"form": form}, status=400)
    context = review_context(form.cleaned_data["quarter"])
    return render(request, "console/review.html", {"form": form, **context})


@require_GET
@finance_required
def review_pdf(request: HttpRequest) -> HttpResponse:
    form = QuarterForm(request.GET)
    if not form.is_valid():
        return render(request, "console/review.html", {"form": form}, status=400)
    context = review_context(form.cleaned_data["quarter"])
    pdf = pdf_from_html(render_to_string("console/review_pdf.html", context))
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = (
        f'attachment; filename="api-program-review-{context["code"]}.pdf"'
    )
    return response
