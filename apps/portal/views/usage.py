"""The usage explorer: filter, group and chart usage from the hourly rollups; download CSV."""

import csv
from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from apps.core.periods import BillingPeriod, local_midnight
from apps.metering.models import Meter
from apps.portal.access import Portal, portal_view
from apps.portal.charts import chart_labels, chart_series
from apps.portal.forms import VALUES_DAYS, ExplorerForm, default_range
from apps.portal.selectors import (
    EXPLORER_DIMENSIONS,
    EXPLORER_MEASURES,
    Exploration,
    dimension_values,
    meter_list,
    usage_explore,
)
from apps.portal.views.common import page


@dataclass(frozen=True)
class _Ask:
    span: BillingPeriod
    filters: dict[str, str]
    group_by: str | None
    measure: str


def _span(start: date, end: date, zone: str) -> BillingPeriod:
    """Local days ``start`` to ``end`` inclusive, as a half-open UTC span."""
    tz = ZoneInfo(zone)
    return BillingPeriod(local_midnight(start, tz), local_midnight(end + timedelta(days=1), tz))


def _meter_narrowing(meter: Meter | None, filters: dict[str, str], measure: str) -> str:
    """A meter narrows to its event type and its dimension filters, and measures its field
    when the rollups sum it (else calls); other meters' own math is on the invoice."""
    if meter is None:
        return measure
    filters["event_type"] = meter.event_type
    for name, value in meter.filters.items():
        if name in EXPLORER_DIMENSIONS:
            filters[name] = str(value)
    return meter.field if meter.field in EXPLORER_MEASURES else "events"


def _ask(portal: Portal, request: HttpRequest) -> tuple[ExplorerForm, _Ask | None]:
    tenant = portal.tenant
    today = timezone.now().astimezone(ZoneInfo(tenant.timezone)).date()
    start, end = default_range(today)
    wide = _span(today - timedelta(days=VALUES_DAYS), today, tenant.timezone)
    values = dimension_values(tenant_id=tenant.id, start=wide.start, end=wide.end)
    meters = {m.code: m for m in meter_list()}
    data = request.GET.copy() if request.GET else None
    form = ExplorerForm(
        data,
        initial={"start": start, "end": end, "measure": "events"},
        values=values,
        meters=list(meters),
    )
    if data is None:
        return form, _Ask(_span(start, end, tenant.timezone), {}, None, "events")
    if not form.is_valid():
        return form, None
    cd = form.cleaned_data
    filters = {name: cd[name] for name in ("feature", "endpoint", "model") if cd.get(name)}
    measure = _meter_narrowing(meters.get(cd["meter"]), filters, cd["measure"] or "events")
    span = _span(cd["start"], cd["end"], tenant.timezone)
    return form, _Ask(span, filters, cd["group_by"] or None, measure)


def _explore(portal: Portal, ask: _Ask) -> Exploration:
    return usage_explore(
        tenant_id=portal.tenant.id,
        timezone_name=portal.tenant.timezone,
        start=ask.span.start,
        end=ask.span.end,
        filters=ask.filters,
        group_by=ask.group_by,
        measure=ask.measure,
    )


@require_safe
@portal_view()
def usage(request: HttpRequest, portal: Portal) -> HttpResponse:
    form, ask = _ask(portal, request)
    context: dict = {"form": form, "ask": ask}
    status = 200 if ask else 400
    if ask is not None:
        found = _explore(portal, ask)
        context |= {
            "found": found,
            "chart_labels": chart_labels(found.days),
            "chart_series": chart_series(found.series),
            "csv_query": request.GET.urlencode(),
        }
    return page(request, portal, "portal/usage.html", context, section="usage", status=status)


def _cell(text: str) -> str:
    """A spreadsheet reads a cell that starts with = + - @ as a formula: quote it."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text


@require_safe
@portal_view()
def usage_csv(request: HttpRequest, portal: Portal) -> HttpResponse:
    """One row per local day and group: day, group, measure, value."""
    form, ask = _ask(portal, request)
    if ask is None:
        errors = "; ".join(f"{k}: {' '.join(str(e) for e in v)}" for k, v in form.errors.items())
        return HttpResponse(errors, status=400, content_type="text/plain")
    found = _explore(portal, ask)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"usage-{portal.tenant.external_id}-{ask.span.start:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(["day", ask.group_by or "group", "measure", "value"])
    for label, values in found.series.items():
        for day, value in zip(found.days, values, strict=True):
            writer.writerow([day, _cell(label), ask.measure, format(value.normalize(), "f")])
    return response
