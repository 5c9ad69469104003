from typing import Any

from django.core.management.base import CommandParser

from apps.assurance.selectors import leakage_period_parse, leakage_tenant_get
from apps.assurance.services.scans import leakage_scan
from apps.core.commands import AuditedCommand
from apps.core.errors import ApplicationError


class Command(AuditedCommand):
    help = "Scan a month for revenue leakage and record the findings."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", required=True, help="YYYY-MM")
        parser.add_argument("--tenant", help="a tenant's external id; default: every tenant")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            month = leakage_period_parse(options["period"])
            tenant = (
                leakage_tenant_get(external_id=options["tenant"]) if options["tenant"] else None
            )
        except ApplicationError as exc:
            self.stderr.write(exc.message)
            raise SystemExit(2) from exc
        scan = leakage_scan(period_start=month, tenant_ids=[tenant.id] if tenant else None)
        width = max(len(name) for name in scan.counts)
        for category, count in scan.counts.items():
            self.stdout.write(f"{category:<{width}}  {count}")
        self.stdout.write(
            f"{month:%Y-%m}: {sum(scan.counts.values())} findings; {scan.opened} new, "
            f"{scan.reopened} reopened, {scan.updated} still open, {scan.resolved} resolved"
        )
