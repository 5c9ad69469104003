from django.urls import path

from apps.assurance.api import views

urlpatterns = [
    path("leakage/report", views.LeakageReportView.as_view()),
    path("leakage/findings", views.FindingListView.as_view()),
    path("leakage/findings/<str:finding_id>", views.FindingDetailView.as_view()),
    path("leakage/findings/<str:finding_id>/acknowledge", views.FindingAcknowledgeView.as_view()),
    path("leakage/findings/<str:finding_id>/resolve", views.FindingResolveView.as_view()),
    path("leakage/scans", views.LeakageScanView.as_view()),
]
