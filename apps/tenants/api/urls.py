from django.urls import path

from apps.tenants.api.views import TenantDetailView, TenantListView

urlpatterns = [
    path("tenants", TenantListView.as_view(), name="tenant-list"),
    path("tenants/<str:external_id>", TenantDetailView.as_view(), name="tenant-detail"),
]
