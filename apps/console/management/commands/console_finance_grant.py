"""Let an existing user into the finance console: staff, in the finance group."""

from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import CommandError, CommandParser

from apps.console.access import FINANCE_GROUP
from apps.core.commands import AuditedCommand


class Command(AuditedCommand):
    help = "Give a user the finance console: marks them staff and adds them to 'finance'."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"username: no user {options['username']!r}")
        group, _ = Group.objects.get_or_create(name=FINANCE_GROUP)
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        user.groups.add(group)
        self.stdout.write(f"{user.username} can now use the finance console at /console/.")
