import json
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from apps.billing.services.runs import billing_run
from apps.core.clock import aware_time_parse
from apps.core.commands import AuditedCommand


class Command(AuditedCommand):
    help = (
        "Close every subscription period that ended: make or refresh its draft invoice, and "
        "finalize it once the grace period is over. Safe to run twice or concurrently."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--as-of",
            help="stands in for the current time (ISO 8601 with an offset), for tests and "
            "catch-up runs; default now",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            as_of = (
                aware_time_parse(options["as_of"], field="--as-of")
                if options["as_of"]
                else timezone.now()
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        report = billing_run(as_of=as_of)
        self.stdout.write(json.dumps({"as_of": as_of.isoformat(), **report.as_dict()}, indent=2))
