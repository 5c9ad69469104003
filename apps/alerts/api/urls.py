from django.urls import path

from apps.alerts.api import views

urlpatterns = [
    path("webhooks/endpoints", views.EndpointListView.as_view()),
    path("webhooks/endpoints/<str:endpoint_id>", views.EndpointDetailView.as_view()),
    path("webhooks/endpoints/<str:endpoint_id>/rotate-secret", views.EndpointRotateView.as_view()),
    path(
        "webhooks/endpoints/<str:endpoint_id>/deliveries/<str:delivery_id>/redeliver",
        views.RedeliverView.as_view(),
    ),
]
