from django.urls import path

from apps.chargeback.api import views

urlpatterns = [
    path("analytics/full_cost_per_call", views.FullCostPerCallView.as_view()),
    path("statements", views.StatementListView.as_view()),
    path("statements/run", views.StatementsRunView.as_view()),
    path("statements/<str:statement_id>", views.StatementDetailView.as_view()),
    path("statements/<str:statement_id>/pdf", views.StatementPdfView.as_view()),
    path("statements/<str:statement_id>/issue", views.StatementIssueView.as_view()),
    path("statements/<str:statement_id>/corrections", views.StatementCorrectView.as_view()),
    path("exports/focus", views.FocusExportView.as_view()),
    path("exports/chargeback-gl", views.GlExportView.as_view()),
]
