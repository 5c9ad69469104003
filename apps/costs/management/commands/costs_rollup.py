from typing import Any

from apps.core.commands import AuditedCommand
from apps.costs.services.rollup import cost_days_reprice, cost_rollup_pending_run


class Command(AuditedCommand):
    help = "Cost every day rolled up since the last run, and re-cost days whose prices changed."

    def handle(self, *args: Any, **options: Any) -> None:
        built = cost_rollup_pending_run()
        repriced = cost_days_reprice()
        self.stdout.write(f"costed {built} tenant-days; re-costed {repriced} after price changes")
