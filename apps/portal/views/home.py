"""The partner's home: this period's usage and running invoice, credits, budgets."""

from datetime import datetime
from zoneinfo import ZoneInfo

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from apps.billing.selectors import invoice_preview
from apps.core.periods import BillingPeriod, calendar_period
from apps.portal.access import Portal, portal_view
from apps.portal.charts import chart_labels, chart_series
from apps.portal.selectors import meter_usage_by_day, usage_explore
from apps.portal.summaries import budget_statuses, credit_summary
from apps.portal.views.common import page

TOP_ENDPOINTS = 5


def _period(portal: Portal, preview_period: BillingPeriod | None, now: datetime) -> BillingPeriod:
    if preview_period is not None:
        return preview_period
    return calendar_period(now, timezone_name=portal.tenant.timezone, interval="month")


@require_safe
@portal_view()
def home(request: HttpRequest, portal: Portal) -> HttpResponse:
    tenant, now = portal.tenant, timezone.now()
    preview = invoice_preview(tenant_id=tenant.id, at=now)
    period = _period(portal, preview.period if preview else None, now)

    def usage(group_by: str):  # the period so far, per local day
        return usage_explore(
            tenant_id=tenant.id,
            timezone_name=tenant.timezone,
            start=period.start,
            end=min(period.end, now),
            filters={},
            group_by=group_by,
            measure="events",
        )

    by_feature = usage("feature")
    by_meter = meter_usage_by_day(
        tenant_id=tenant.id,
        timezone_name=tenant.timezone,
        start=period.start,
        end=min(period.end, now),
    )
    endpoints = usage("endpoint").totals[:TOP_ENDPOINTS]
    context = {
        "preview": preview,
        "period": period,
        "calls": sum((total for _, total in by_feature.totals), 0),
        "chart_labels": chart_labels(by_feature.days),
        "chart_series": chart_series(by_feature.series),
        "meter_labels": chart_labels(by_meter.days),
        "meter_series": chart_series(by_meter.series),
        "credits": credit_summary(
            tenant_id=tenant.id,
            currency=tenant.currency,
            today=now.astimezone(ZoneInfo(tenant.timezone)).date(),
        ),
        "budgets": budget_statuses(tenant_id=tenant.id),
        "endpoints": endpoints,
    }
    return page(request, portal, "portal/home.html", context, section="home")
