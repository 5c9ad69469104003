from django.urls import path

from apps.catalog.api.views import CatalogApplyView, CatalogView

urlpatterns = [
    path("catalog", CatalogView.as_view(), name="catalog"),
    path("catalog/apply", CatalogApplyView.as_view(), name="catalog-apply"),
]
