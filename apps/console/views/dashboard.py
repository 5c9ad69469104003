"""The API-program dashboard (/console/): adoption, volume, endpoints, revenue, accuracy and
the program's cost against its revenue, for one month."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.assurance.selectors import leakage_report
from apps.console import selectors
from apps.console.access import finance_required
from apps.console.forms import month_of


def program_context(period: selectors.CostPeriod) -> dict:
    """Everything the dashboard and the quarterly review show for one month, but the
    usage-vs-billing accuracy (see ``accuracy``)."""
    adoption = selectors.program_adoption(period=period)
    names = {p.id: p.external_id for p, _, _ in adoption.partners}
    revenue = selectors.program_revenue(period=period)
    currency = settings.PERCALL_OPERATOR_CURRENCY
    partners = {p.id: p for p, _, _ in adoption.partners}
    return {
        "period": period,
        "adoption": adoption,
        "volume": selectors.call_volume(period=period, names=names),
        "endpoints": selectors.endpoint_popularity(period=period),
        "revenue": revenue,
        "revenue_partners": sorted(
            ((partners.get(t), c, a) for (t, c), a in revenue.by_partner.items()),
            key=lambda row: (row[1], -row[2]),
        ),
        "revenue_plans": sorted(revenue.by_plan.items(), key=lambda kv: (kv[0][1], -kv[1])),
        "revenue_meters": sorted(revenue.by_meter.items(), key=lambda kv: (kv[0][1], -kv[1])),
        "math": selectors.program_math(period=period, revenue=revenue, currency=currency),
    }


@require_GET
@finance_required
def dashboard(request: HttpRequest) -> HttpResponse:
    form, period = month_of(request.GET)
    if period is None:
        return render(request, "console/dashboard.html", {"form": form}, status=400)
    context = program_context(period)
    adoption = context["adoption"]
    context.update(
        form=form,
        growth_labels=[m for m, _, _ in adoption.months],
        growth_series=[
            {"label": "Registered partners", "data": [r for _, r, _ in adoption.months]},
            {"label": "Active partners", "data": [a for _, _, a in adoption.months]},
        ],
        volume_series=[{"label": label, "data": data} for label, data in context["volume"].series],
    )
    return render(request, "console/dashboard.html", context)


@require_GET
@finance_required
def accuracy(request: HttpRequest) -> HttpResponse:
    """The month's usage-vs-billing accuracy card. The reconciliation behind it reads raw
    events (hundreds of milliseconds on a busy month), so the dashboard loads it after the
    page, through htmx, instead of holding the page back."""
    form, period = month_of(request.GET)
    if period is None:
        return render(request, "console/_accuracy.html", {"form": form}, status=400)
    total = leakage_report(period_start=period.start)["total"]
    return render(request, "console/_accuracy.html", {"period": period, "accuracy": total})
