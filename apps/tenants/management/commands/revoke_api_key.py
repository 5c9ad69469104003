from typing import Any

from django.core.management.base import CommandError, CommandParser

from apps.core.commands import AuditedCommand
from apps.tenants.models import ApiKey
from apps.tenants.services.api_keys import api_key_revoke


class Command(AuditedCommand):
    help = "Revoke an API key by its public prefix; it fails on the very next request."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--prefix", required=True, help="the key's prefix (not the secret)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            api_key = api_key_revoke(prefix=options["prefix"].strip())
        except ApiKey.DoesNotExist as exc:
            raise CommandError(f"prefix: no API key {options['prefix']!r}") from exc
        self.stdout.write(f"Revoked key {api_key.prefix} ({api_key.name}) at {api_key.revoked_at}.")
