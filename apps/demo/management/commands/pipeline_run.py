import logging
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.billing.services.runs import billing_run
from apps.chargeback.services.statements import statement_period_last_closed, statements_run
from apps.core.clock import aware_time_parse
from apps.costs.services.rollup import cost_days_reprice, cost_rollup_pending_run
from apps.metering.services.rollup import rollup_pending_run


def _as_of(raw: str | None) -> datetime:
    if not raw:
        return timezone.now()
    try:
        return aware_time_parse(raw, field="--as-of")
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


class Command(BaseCommand):
    help = (
        "Run the pipeline once: roll up every queued (tenant, hour), then close every billing "
        "period that ended (drafts, and finalized invoices with PDFs past the grace period). "
        "Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--as-of",
            help="the pipeline's clock, ISO 8601 with an offset (default: now); it decides "
            "which periods close. Rollups always take every queued hour.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Without a broker every rollup and PDF render runs in-process and Celery logs each.
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
        as_of = _as_of(options["as_of"])
        self.stdout.write(f"Pipeline as of {as_of.isoformat()}:")
        rebuilt = rollup_pending_run()
        self.stdout.write(f"  rollups: {rebuilt} (tenant, hour) pairs recomputed")
        report = billing_run(as_of=as_of)
        self.stdout.write(
            f"  billing: {report.drafted} drafted, {report.refreshed} refreshed, "
            f"{report.finalized} finalized over {report.subscriptions} subscriptions"
        )
        for problem in report.problems:
            self.stdout.write(f"  billing problem: {problem}")
        costed = cost_rollup_pending_run() + cost_days_reprice()
        self.stdout.write(f"  costs: {costed} (tenant, day) pairs costed")
        period = statement_period_last_closed(today=as_of.date())
        statements = statements_run(period=period)
        self.stdout.write(
            f"  chargeback: {len(statements.drafted)} statements drafted for {period.label}"
            f", {len(statements.issued_unchanged) + len(statements.issued_differs)} issued"
        )
