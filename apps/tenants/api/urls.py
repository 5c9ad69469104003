from django.urls import path

from apps.tenants.api.audit import AuditEntryListView
from apps.tenants.api.views import TenantDetailView, TenantListView

urlpatterns = [
    path("audit", AuditEntryListView.as_view(), name="audit-list"),
    path("tenants", TenantListView.as_view(), name="tenant-list"),
    path("tenants/<str:external_id>", TenantDetailView.as_view(), name="tenant-detail"),
]
