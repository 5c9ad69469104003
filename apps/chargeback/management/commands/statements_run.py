from typing import Any

from django.core.management.base import CommandParser

from apps.chargeback.services.statements import statement_period_last_closed, statements_run
from apps.core.commands import AuditedCommand
from apps.core.errors import ApplicationError
from apps.costs.selectors import cost_period_parse
from apps.costs.services.rollup import cost_rollup_pending_run


class Command(AuditedCommand):
    help = "Draft (or refresh the drafts of) every cost center's statement for a month."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", help="YYYY-MM (UTC); default: the month last closed")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            period = (
                cost_period_parse(options["period"])
                if options["period"]
                else statement_period_last_closed()
            )
            if not period.is_month:
                raise ApplicationError("period: statements are monthly, give YYYY-MM")
        except ApplicationError as exc:
            self.stderr.write(exc.message)
            raise SystemExit(2) from exc
        cost_rollup_pending_run()  # cost what was rolled up since the last run first
        report = statements_run(period=period)
        self.stdout.write(
            f"{period.label}: drafted {len(report.drafted)}, issued and unchanged "
            f"{len(report.issued_unchanged)}, issued but changed since {len(report.issued_differs)}"
            + (
                f" ({', '.join(report.issued_differs)}: correct them)"
                if report.issued_differs
                else ""
            )
        )
