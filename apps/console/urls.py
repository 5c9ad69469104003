from django.urls import path

from apps.console.views import assurance, auth, chargeback, costs, dashboard, invoices, review

app_name = "console"
urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("accuracy/", dashboard.accuracy, name="accuracy"),
    path("login/", auth.sign_in, name="login"),
    path("logout/", auth.sign_out, name="logout"),
    path("assurance/", assurance.reconciliation, name="reconciliation"),
    path("assurance/findings/", assurance.findings, name="findings"),
    path(
        "assurance/findings/<uuid:finding_id>/<str:action>/",
        assurance.finding_act,
        name="finding-act",
    ),
    path("invoices/", invoices.invoices, name="invoices"),
    path("invoices/<uuid:invoice_id>/", invoices.invoice, name="invoice"),
    path("invoices/<uuid:invoice_id>/pdf/", invoices.invoice_pdf, name="invoice-pdf"),
    path("invoices/<uuid:invoice_id>/<str:action>/", invoices.invoice_act, name="invoice-act"),
    path("chargeback/", chargeback.statements, name="chargeback"),
    path("chargeback/draft/", chargeback.statements_draft, name="chargeback-draft"),
    path(
        "chargeback/statements/<uuid:statement_id>/issue/",
        chargeback.statement_act,
        name="statement-issue",
    ),
    path(
        "chargeback/statements/<uuid:statement_id>/pdf/",
        chargeback.statement_pdf,
        name="statement-pdf",
    ),
    path("chargeback/<str:kind>.csv", chargeback.export, name="chargeback-export"),
    path("costs/", costs.costs, name="costs"),
    path("review/", review.review, name="review"),
    path("review.pdf", review.review_pdf, name="review-pdf"),
]
