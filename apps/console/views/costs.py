"""Cost intelligence: any metric of the costs app (and chargeback's full cost per call) for a
month as a chart and a table with the change on the previous period; margins by customer and
by feature; the month's anomalies; and the forecasts with their bands."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.alerts.selectors import anomaly_list, forecast_latest
from apps.chargeback.metrics import full_cost_per_call_metric
from apps.console.access import finance_required
from apps.console.forms import MetricForm, last_closed_month
from apps.core.errors import ApplicationError
from apps.costs.metrics import metric_answer
from apps.costs.selectors import CostPeriod

ANOMALIES_SHOWN = 50
SKIP = {"group", "value", "previous", "change"}


def _answer(name: str, period: CostPeriod, group_by: str) -> dict[str, Any]:
    groups = (group_by,) if group_by else None
    if name == "full_cost_per_call":
        return full_cost_per_call_metric(period=period, group_by=groups)
    return metric_answer(name, period=period, group_by=groups)


def _label(group: dict[str, str]) -> str:
    if "tenant_name" in group:
        return group["tenant_name"] or group.get("tenant", "")
    return " · ".join(v or "(none)" for v in group.values()) or "all"


def _table(answer: dict[str, Any]) -> dict[str, Any]:
    """Rows for the template and the chart: the label, value, previous value and change of
    each group, then the metric's other figures as extra columns."""
    rows = answer["rows"]
    extra = [
        k
        for k in (rows[0] if rows else {})
        if k not in SKIP and not isinstance(rows[0][k], dict | list)
    ]
    shown = rows[:12]  # the chart keeps to the largest groups; the table shows every one
    return {
        "columns": extra,
        "rows": [
            {"label": _label(r["group"]), "row": r, "extra": [r[k] for k in extra]} for r in rows
        ],
        "labels": [_label(r["group"]) for r in shown],
        "series": [
            {"label": answer["period"], "data": [r["value"] or "0" for r in shown]},
            {"label": answer["previous_period"], "data": [r["previous"] or "0" for r in shown]},
        ],
    }


@require_GET
@finance_required
def costs(request: HttpRequest) -> HttpResponse:
    data = request.GET.copy()
    data.setdefault("period", last_closed_month())
    form = MetricForm(data)
    if not form.is_valid():
        return render(request, "console/costs.html", {"form": form}, status=400)
    period = form.cleaned_data["period"]
    name = form.cleaned_data["metric"] or "cost"
    try:
        answer = _answer(name, period, form.cleaned_data["group_by"])
    except ApplicationError as exc:
        form.add_error("group_by", exc.message)
        return render(request, "console/costs.html", {"form": form}, status=exc.status_code)
    anomalies = anomaly_list(since=period.start_at()).filter(hour__lt=period.end_at())
    return render(
        request,
        "console/costs.html",
        {
            "form": form,
            "period": period,
            "metric": name,
            "answer": answer,
            "table": _table(answer),
            "anomalies": list(anomalies[:ANOMALIES_SHOWN]),
            "forecasts": list(forecast_latest(period_start=period.start)),
            "last_day": period.end - timedelta(days=1),
            "zero": Decimal(0),
        },
    )
