from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.core.health import healthz, readyz
from apps.core.metrics import metrics_view

# Unknown API routes and malformed ids (no route matches) answer the API's JSON error.
handler404 = "apps.core.api.exceptions.not_found"

urlpatterns = [
    # Probes and the Prometheus scrape (docs/operations.md): no session, no API key.
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("portal/", include("apps.portal.urls")),
    path("console/", include("apps.console.urls")),
    path("api/v1/", include("apps.tenants.api.urls")),
    path("api/v1/", include("apps.metering.api.urls")),
    path("api/v1/", include("apps.catalog.api.urls")),
    path("api/v1/", include("apps.billing.api.urls")),
    # full_cost_per_call needs the shared-cost pools, so chargeback answers it before costs.
    path("api/v1/", include("apps.chargeback.api.urls")),
    path("api/v1/", include("apps.costs.api.urls")),
    path("api/v1/", include("apps.alerts.api.urls")),
    path("api/v1/", include("apps.assurance.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
