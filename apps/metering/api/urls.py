from django.urls import path

from apps.metering.api.views import EventIngestView, UsageCheckView, UsageView

urlpatterns = [
    path("events", EventIngestView.as_view(), name="event-ingest"),
    path("usage", UsageView.as_view(), name="usage"),
    path("usage/check", UsageCheckView.as_view(), name="usage-check"),
]
