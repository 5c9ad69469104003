from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.metering.services.rollup import rollup_pending_run


def _as_of(raw: str | None) -> datetime:
    if not raw:
        return timezone.now()
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CommandError(f"--as-of: {raw!r} is not an ISO 8601 time") from exc
    if value.tzinfo is None:
        raise CommandError(f"--as-of: {raw!r} needs an offset such as Z or +02:00")
    return value


class Command(BaseCommand):
    help = (
        "Run the pipeline once: roll up every queued (tenant, hour). Idempotent; invoicing "
        "joins it once billing lands."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--as-of",
            help="the pipeline's clock, ISO 8601 with an offset (default: now); it decides "
            "which periods close once invoicing joins. Rollups always take every queued hour.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = _as_of(options["as_of"])
        self.stdout.write(f"Pipeline as of {as_of.isoformat()}:")
        rebuilt = rollup_pending_run()
        self.stdout.write(f"  rollups: {rebuilt} (tenant, hour) pairs recomputed")
