from django.urls import path

from apps.billing.api import views

urlpatterns = [
    path("subscriptions", views.SubscriptionListView.as_view(), name="subscription-list"),
    path(
        "subscriptions/<uuid:subscription_id>",
        views.SubscriptionDetailView.as_view(),
        name="subscription-detail",
    ),
    path(
        "subscriptions/<uuid:subscription_id>/plan",
        views.SubscriptionPlanView.as_view(),
        name="subscription-plan",
    ),
    path(
        "subscriptions/<uuid:subscription_id>/cancel",
        views.SubscriptionCancelView.as_view(),
        name="subscription-cancel",
    ),
    path("invoices", views.InvoiceListView.as_view(), name="invoice-list"),
    path("invoices/preview", views.InvoicePreviewView.as_view(), name="invoice-preview"),
    path("invoices/<uuid:invoice_id>", views.InvoiceDetailView.as_view(), name="invoice-detail"),
    path("invoices/<uuid:invoice_id>/pdf", views.InvoicePdfView.as_view(), name="invoice-pdf"),
    path(
        "invoices/<uuid:invoice_id>/finalize",
        views.InvoiceFinalizeView.as_view(),
        name="invoice-finalize",
    ),
    path("invoices/<uuid:invoice_id>/void", views.InvoiceVoidView.as_view(), name="invoice-void"),
    path(
        "invoices/<uuid:invoice_id>/mark-paid",
        views.InvoicePaidView.as_view(),
        name="invoice-mark-paid",
    ),
    path(
        "invoices/<uuid:invoice_id>/credit-notes",
        views.InvoiceCreditNoteView.as_view(),
        name="invoice-credit-notes",
    ),
    path(
        "tenants/<str:external_id>/credit-purchases",
        views.CreditPurchaseView.as_view(),
        name="credit-purchases",
    ),
    path("tenants/<str:external_id>/credits", views.CreditsView.as_view(), name="tenant-credits"),
]
