from django.urls import path

from apps.alerts.api import budget_views, insight_views, views

urlpatterns = [
    path("webhooks/endpoints", views.EndpointListView.as_view()),
    path("webhooks/endpoints/<str:endpoint_id>", views.EndpointDetailView.as_view()),
    path("webhooks/endpoints/<str:endpoint_id>/rotate-secret", views.EndpointRotateView.as_view()),
    path(
        "webhooks/endpoints/<str:endpoint_id>/deliveries/<str:delivery_id>/redeliver",
        views.RedeliverView.as_view(),
    ),
]

urlpatterns += [
    path("budgets", budget_views.BudgetListView.as_view()),
    path("budgets/<str:budget_id>", budget_views.BudgetDetailView.as_view()),
    path("budgets/<str:budget_id>/alerts", budget_views.BudgetAlertListView.as_view()),
    path("limits/<str:external_id>", budget_views.LimitsView.as_view()),
]

urlpatterns += [
    path("anomalies", insight_views.AnomalyListView.as_view()),
    path("anomalies/<str:anomaly_id>/acknowledge", insight_views.AnomalyAcknowledgeView.as_view()),
    path("anomalies/<str:anomaly_id>/resolve", insight_views.AnomalyResolveView.as_view()),
    path("forecasts", insight_views.ForecastListView.as_view()),
    path("forecasts/accuracy", insight_views.ForecastAccuracyView.as_view()),
]
