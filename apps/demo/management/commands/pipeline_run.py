import logging
from datetime import datetime
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from apps.alerts.models import BudgetAlert, BudgetPeriod, CreditAlert, EmailNotification
from apps.alerts.selectors import forecast_accuracy
from apps.alerts.services.budgets.evaluate import budgets_evaluate
from apps.alerts.services.forecasts import insights_demo_run
from apps.alerts.services.notifications import email_notifications_send
from apps.alerts.services.webhooks import outbox_dispatch
from apps.assurance.selectors import leakage_report
from apps.assurance.services.scans import leakage_scan
from apps.billing.services.runs import billing_run
from apps.chargeback.services.statements import statement_period_last_closed, statements_run
from apps.core.clock import aware_time_parse
from apps.core.commands import AuditedCommand
from apps.core.periods import month_add
from apps.costs.services.rollup import cost_days_reprice, cost_rollup_pending_run
from apps.demo.guardrails import demo_forecast_backtest, demo_guardrails_ensure
from apps.metering.services.rollup import rollup_pending_run


def _as_of(raw: str | None) -> datetime:
    if not raw:
        return timezone.now()
    try:
        return aware_time_parse(raw, field="--as-of")
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


class Command(AuditedCommand):
    help = (
        "Run the pipeline once: roll up every queued (tenant, hour), then close every billing "
        "period that ended (drafts, and finalized invoices with PDFs past the grace period), "
        "cost the days, draft last month's statements, scan for leakage, evaluate budgets, "
        "judge the last day for anomalies, snapshot forecasts and send what they announce. "
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
        self._guardrails(as_of)

    def _guardrails(self, as_of: datetime) -> None:
        this_month = as_of.date().replace(day=1)
        for month in (month_add(this_month, -1), this_month):
            scan = leakage_scan(period_start=month)
            leakage_report(period_start=month)  # warm it for the console, as the task does
            found = ", ".join(f"{n} {c}" for c, n in sorted(scan.counts.items()) if n)
            self.stdout.write(f"  leakage {month:%Y-%m}: {found or 'no findings'}")
        demo_guardrails_ensure(today=as_of.date())
        budgets = budgets_evaluate(as_of=as_of)
        # Creating a budget evaluates it at once, so count what has fired, not this run's.
        fired = BudgetAlert.objects.filter(kind=BudgetAlert.Kind.CROSSED).count()
        limited = BudgetPeriod.objects.filter(over_limit=True).values_list(
            "budget__name", flat=True
        )
        self.stdout.write(
            f"  budgets: {budgets.budgets} evaluated, {fired} thresholds crossed in all, "
            f"{CreditAlert.objects.count()} credit packs low"
            + (f"; over limit: {', '.join(limited)}" if limited else "")
        )
        insights = insights_demo_run(as_of=as_of)
        last_month = month_add(this_month, -1)
        demo_forecast_backtest(month=last_month)
        accuracy = forecast_accuracy(period_start=last_month)["overall"]["mape_pct"]
        self.stdout.write(
            f"  insights: {insights['anomalies']} anomalies in the last 24 hours, "
            f"{insights['forecast_snapshots']} forecast snapshots; {last_month:%Y-%m} cost "
            f"forecasts were off by {accuracy if accuracy is not None else '-'} % (MAPE)"
        )
        outbox_dispatch()  # with no broker, commits already kicked it; this catches the rest
        email_notifications_send()
        mailed = EmailNotification.objects.filter(sent_at__isnull=False).count()
        self.stdout.write(f"  notifications: {mailed} emails sent in all")
