import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from apps.catalog.errors import CatalogInvalid
from apps.catalog.services.apply import catalog_apply
from apps.catalog.services.document import catalog_parse
from apps.core.commands import AuditedCommand
from apps.core.errors import ApplicationError


class Command(AuditedCommand):
    help = "Apply a catalog file (YAML or JSON): meters, rate cards, plans, credit packs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror}") from exc
        try:
            doc = catalog_parse(
                content=content, content_type="json" if path.suffix == ".json" else ""
            )
            report = catalog_apply(doc=doc)
        except (CatalogInvalid, ApplicationError) as exc:
            raise CommandError(f"{path}: {exc.message}") from exc
        self.stdout.write(json.dumps({"changed": report.changed, **report.sections}, indent=2))
