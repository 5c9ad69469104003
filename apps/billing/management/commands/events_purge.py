import json
from typing import Any

from django.core.management.base import CommandParser

from apps.billing.services.retention import events_retention_purge
from apps.core.commands import AuditedCommand


class Command(AuditedCommand):
    help = (
        "Delete raw events older than PERCALL_RAW_EVENT_RETENTION_DAYS that are rolled up and "
        "billed (docs/metering.md, Retention); --dry-run counts them and deletes nothing. "
        "Safe to run twice or concurrently."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted; change nothing"
        )
        parser.add_argument(
            "--batch-size", type=int, default=5000, help="rows per transaction (default 5000)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = events_retention_purge(
            dry_run=options["dry_run"], batch_size=options["batch_size"], max_rows=2**62
        )
        self.stdout.write(json.dumps(report.as_dict(), indent=2))
