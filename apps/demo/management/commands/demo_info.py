from typing import Any

from apps.core.commands import AuditedCommand
from apps.demo.services import demo_info_gather, demo_ingest_key_issue

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


class Command(AuditedCommand):
    help = (
        "Print where Percall runs, the demo logins and a fresh ingest API key with a curl "
        "example (each run creates a new key: keys are shown only once)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--base-url",
            default=DEFAULT_BASE_URL,
            help=f"where the server answers (default {DEFAULT_BASE_URL}; make run passes its "
            "HOST and PORT)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        base_url = options["base_url"].rstrip("/")
        info = demo_info_gather()
        issued = demo_ingest_key_issue()
        lines = [
            "",
            f"Percall is starting on {base_url}",
            f"  API docs:  {base_url}/api/docs/",
            f"  Admin:     {base_url}/admin/"
            + (f"  (demo login: {info.admin_login})" if info.admin_login else ""),
            f"  Portal:    {base_url}/portal/"
            + (
                f"  (demo partner login: {info.partner_login}, owner of "
                f"{' and '.join(info.partner_tenants)})"
                if info.partner_login
                else ""
            ),
            f"  Console:   {base_url}/console/"
            + (f"  (demo finance login: {info.finance_login})" if info.finance_login else ""),
            f"  Invoices:  {base_url}/admin/billing/invoice/  (finalized, with PDFs: "
            f"{info.finalized_invoices}; drafts: {info.draft_invoices})",
            f"  Chargeback: {base_url}/admin/chargeback/statement/  ({info.statements} "
            f"statements for {info.statements_period}; issue drafts with the admin action)",
            "",
            f"A new ingest API key (scopes ingest, read; operator-wide; key {issued.api_key.prefix}"
            ", shown only this once):",
            f"  {issued.plaintext}",
            "",
        ]
        if info.tenant is None:
            lines.append("No tenant yet: run `python manage.py demo_load` to load the demo.")
        else:
            lines += [
                f"Send one event for the demo tenant {info.tenant}:",
                f"  curl -sS -X POST {base_url}/api/v1/events \\",
                f"    -H 'Authorization: Bearer {issued.plaintext}' \\",
                "    -H 'Content-Type: application/json' \\",
                f"    -d '{info.example_body}'",
                "Sent twice, the second answer counts it as a duplicate: it is stored once.",
                "",
                "Its invoices and its upcoming one (the key has the read scope):",
                f"  curl -sS '{base_url}/api/v1/invoices?tenant={info.tenant}' "
                f"-H 'Authorization: Bearer {issued.plaintext}'",
                f"  curl -sS '{base_url}/api/v1/invoices/preview?tenant={info.tenant}' "
                f"-H 'Authorization: Bearer {issued.plaintext}'",
                "",
                "What the calls cost, by feature, and last month's FOCUS export:",
                f"  curl -sS '{base_url}/api/v1/analytics/cost_per_call?period="
                f"{info.statements_period}&group_by=feature' "
                f"-H 'Authorization: Bearer {issued.plaintext}'",
                f"  curl -sS '{base_url}/api/v1/exports/focus?period={info.statements_period}' "
                f"-H 'Authorization: Bearer {issued.plaintext}'",
                "",
                f"Revenue assurance: {info.open_findings} open leakage findings for "
                f"{info.statements_period}, the reconciliation report, budgets and their alerts, "
                "anomalies and this month's forecasts:",
                *(
                    f"  curl -sS '{base_url}/api/v1/{path}' "
                    f"-H 'Authorization: Bearer {issued.plaintext}'"
                    for path in (
                        f"leakage/report?period={info.statements_period}",
                        f"leakage/findings?period={info.statements_period}&status=open",
                        "budgets",
                        "anomalies?status=open",
                        f"forecasts?period={info.this_month}&scope=total",
                    )
                ),
            ]
            if info.throttled_tenant:
                lines += [
                    f"The gateway's limits check: {info.throttled_tenant} is over a throttling "
                    "budget:",
                    f"  curl -sS '{base_url}/api/v1/limits/{info.throttled_tenant}' "
                    f"-H 'Authorization: Bearer {issued.plaintext}'",
                ]
        self.stdout.write("\n".join(lines) + "\n")
