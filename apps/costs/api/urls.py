from django.urls import path

from apps.costs.api.views import AnalyticsView

urlpatterns = [
    path("analytics/<str:metric>", AnalyticsView.as_view(), name="analytics"),
]
