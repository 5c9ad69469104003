import logging
from typing import Any

from django.core.management.base import CommandError, CommandParser

from apps.core.commands import AuditedCommand
from apps.demo.services import DEMO_ADMIN_PASSWORD, DEMO_ADMIN_USERNAME, demo_load


class Command(AuditedCommand):
    help = (
        "Load the demo business (about 30 tenants, cost centers and days of AI-API traffic) "
        "through Percall's own services. Deterministic for a seed; safe to re-run. Demo only: "
        f"also creates the superuser {DEMO_ADMIN_USERNAME}/{DEMO_ADMIN_PASSWORD}."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--events", type=int, default=300_000, help="about this many events")
        parser.add_argument("--seed", type=int, default=42, help="the same seed, the same data")
        parser.add_argument("--days", type=int, default=60, help="days of traffic up to now")
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when demo tenants already exist"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["events"] < 0 or options["days"] < 1:
            raise CommandError("--events must be at least 0 and --days at least 1")
        # Without a broker each batch's rollup runs in-process and Celery logs every one of
        # them; sixty "Task succeeded" lines would bury the summary.
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
        result = demo_load(
            events=options["events"],
            seed=options["seed"],
            days=options["days"],
            if_empty=options["if_empty"],
        )
        if result.window is None:
            self.stdout.write(f"Demo already loaded ({result.tenants} tenants); nothing to do.")
            return
        traffic = result.traffic
        rate = traffic.sent / result.seconds if result.seconds else 0
        self.stdout.write(
            f"Demo loaded: {result.tenants} tenants ({result.tenants_created} new), "
            f"{result.cost_centers_created} new cost centers, traffic "
            f"{result.window.start:%Y-%m-%d %H:%M} to {result.window.end:%Y-%m-%d %H:%M} UTC.\n"
            f"Events: {traffic.sent} sent in {traffic.batches} batches, "
            f"{traffic.accepted} accepted, {traffic.duplicates} duplicates, "
            f"{traffic.conflicts} conflicts, {traffic.rejected} rejected; "
            f"{result.seconds:.1f} s ({rate:,.0f} events/s)."
        )
        if result.billing is not None:
            self.stdout.write(
                f"Billing: {result.billing.subscriptions_created} subscriptions, "
                f"{result.billing.welcome_credits} welcome credits, "
                f"{result.billing.packs_bought} credit packs bought."
            )
        for problem in traffic.problems:
            self.stderr.write(f"  {problem}")
        if result.admin_created:
            self.stdout.write(
                f"Created the demo superuser {DEMO_ADMIN_USERNAME}/{DEMO_ADMIN_PASSWORD}."
            )
