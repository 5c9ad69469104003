"""The base of Percall's management commands: what a command changes is audited as its own.

Without it, a price change applied with ``manage.py catalog_apply`` or a key created with
``create_api_key`` would be recorded as ``system``, like the shell. ``AuditedCommand`` names
the actor ``cli:<command>:<operating-system user>`` for the whole run."""

import getpass
from typing import Any

from django.core.management.base import BaseCommand

from apps.core.audit import audit_actor


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry and no $USER
        return "unknown"


class AuditedCommand(BaseCommand):
    def execute(self, *args: Any, **options: Any) -> Any:
        name = type(self).__module__.rsplit(".", 1)[-1]
        with audit_actor(f"cli:{name}:{_os_user()}"):
            return super().execute(*args, **options)
