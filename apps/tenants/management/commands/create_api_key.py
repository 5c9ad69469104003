from typing import Any

from django.core.management.base import CommandError, CommandParser

from apps.core.commands import AuditedCommand
from apps.core.errors import ApplicationError
from apps.tenants.selectors import tenant_get
from apps.tenants.services.api_keys import api_key_create


class Command(AuditedCommand):
    help = "Create an API key and print its plaintext, alone, on the last line (shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", required=True, help="comma-separated: ingest,read,admin")
        parser.add_argument("--tenant", help="bind the key to this tenant's external id")

    def handle(self, *args: Any, **options: Any) -> None:
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        try:
            tenant = (
                tenant_get(external_id=options["tenant"], scope_tenant_id=None)
                if options["tenant"]
                else None
            )
            issued = api_key_create(name=options["name"], scopes=scopes, tenant=tenant)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        bound = f"tenant {tenant.external_id}" if tenant else "operator-wide"
        self.stdout.write(
            f"Created key {issued.api_key.prefix} ({', '.join(issued.api_key.scopes)}; {bound})."
        )
        self.stdout.write("Store it now; it is not shown again:")
        self.stdout.write(issued.plaintext)
