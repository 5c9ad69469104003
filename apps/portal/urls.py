from django.urls import path

from apps.portal.views import auth, credits, home, invoices, keys, team, usage, webhooks

app_name = "portal"
urlpatterns = [
    path("", home.home, name="home"),
    path("login/", auth.sign_in, name="login"),
    path("logout/", auth.sign_out, name="logout"),
    path("tenants/", auth.switch, name="switch"),
    path("password-reset/", auth.password_reset, name="password_reset"),
    path("password-reset/sent/", auth.password_reset_done, name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        auth.password_reset_confirm,
        name="password_reset_confirm",
    ),
    path("password-reset/done/", auth.password_reset_complete, name="password_reset_complete"),
    path("usage/", usage.usage, name="usage"),
    path("usage.csv", usage.usage_csv, name="usage_csv"),
    path("invoices/", invoices.invoice_index, name="invoices"),
    path("invoices/<uuid:invoice_id>/", invoices.invoice_detail, name="invoice"),
    path("invoices/<uuid:invoice_id>/pdf/", invoices.invoice_pdf, name="invoice_pdf"),
    path("credits/", credits.credits, name="credits"),
    path("credits/buy/", credits.credit_purchase, name="credit_purchase"),
    path("keys/", keys.keys, name="keys"),
    path("keys/<str:prefix>/revoke/", keys.key_revoke, name="key_revoke"),
    path("webhooks/", webhooks.webhooks, name="webhooks"),
    path("webhooks/<uuid:endpoint_id>/", webhooks.webhook_detail, name="webhook"),
    path("webhooks/<uuid:endpoint_id>/disable/", webhooks.webhook_disable, name="webhook_disable"),
    path("webhooks/<uuid:endpoint_id>/rotate/", webhooks.webhook_rotate, name="webhook_rotate"),
    path(
        "webhooks/<uuid:endpoint_id>/deliveries/<uuid:delivery_id>/redeliver/",
        webhooks.webhook_redeliver_one,
        name="webhook_redeliver",
    ),
    path("team/", team.team, name="team"),
    path("team/<int:membership_id>/role/", team.member_role, name="member_role"),
    path("team/<int:membership_id>/remove/", team.member_remove, name="member_remove"),
]
