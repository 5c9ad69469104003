"""The audit log: who did what to money and configuration, with the values before and after.

Every service that finalizes, voids or pays an invoice, issues a credit note or a credit grant,
changes prices, creates or revokes an API key, issues or corrects a statement, changes who may
act for a tenant, or settles a leakage finding writes one ``AuditEntry`` in its own transaction,
so an entry exists exactly when its change committed.

The actor is not passed through every call: it is whoever is acting in this context. A request
carries it (``RequestIdMiddleware`` keeps the request in a context variable; the API key
authentication names its key, ``api-key:<prefix>``; a signed-in person is ``user:<username>``);
a Celery task is ``task:<name>``; anything else (a management command, the shell) is
``system``. ``audit_actor`` sets it explicitly for a block.

Entries are append-only: on PostgreSQL a trigger makes UPDATE and DELETE fail (migration
``core.0002``); on SQLite, UPDATE. Nothing in the code path ever changes one.
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from celery.signals import task_postrun, task_prerun
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from apps.core.logging import request_id_var
from apps.core.models import AuditEntry

_actor_var: ContextVar[str | None] = ContextVar("percall_audit_actor", default=None)
_request_var: ContextVar[HttpRequest | None] = ContextVar("percall_audit_request", default=None)


@contextmanager
def audit_actor(label: str) -> Iterator[None]:
    """Name the actor of every entry written inside the block (``cli:catalog_apply``...)."""
    token = _actor_var.set(label[:200])
    try:
        yield
    finally:
        _actor_var.reset(token)


def audit_actor_set(label: str) -> None:
    """Name the actor for the rest of the current request or task (the middleware and the
    task signals reset it when that ends)."""
    _actor_var.set(label[:200])


def audit_request_bind(request: HttpRequest) -> tuple[Any, Any]:
    """Bind a request for its duration (the middleware does), so a signed-in user is the
    actor, and start it with no explicit label; returns what ``audit_request_unbind`` needs."""
    return _request_var.set(request), _actor_var.set(None)


def audit_request_unbind(tokens: tuple[Any, Any]) -> None:
    _request_var.reset(tokens[0])
    _actor_var.reset(tokens[1])


def audit_actor_current() -> str:
    """Who is acting now: an explicit label, else the request's user, else ``system``."""
    label = _actor_var.get()
    if label:
        return label
    request = _request_var.get()
    user = getattr(request, "user", None) if request is not None else None
    if user is not None and getattr(user, "is_authenticated", False):
        name = getattr(user, "get_username", None)
        return f"user:{name() if callable(name) else user}"[:200]
    return "system"


def _json(value: Any) -> Any:
    """A value as an entry stores it: JSON, decimals and times as exact text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json(v) for v in value]
    return str(value)


@dataclass(frozen=True)
class AuditChange:
    """One change to record: what was done (``invoice.finalize``) to which row, and its
    values before and after (None for a creation or where there is nothing to show)."""

    action: str
    target_type: str
    target_id: Any
    tenant_id: UUID | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


def _entry(change: AuditChange, actor: str, at: datetime) -> AuditEntry:
    return AuditEntry(
        occurred_at=at,
        actor=actor,
        action=change.action,
        tenant_id=change.tenant_id,
        target_type=change.target_type,
        target_id=str(change.target_id)[:64],
        before=_json(change.before),
        after=_json(change.after),
        request_id=request_id_var.get()[:64],
    )


def audit_record(
    *,
    action: str,
    target_type: str,
    target_id: Any,
    tenant_id: UUID | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Write one entry, in the caller's transaction, naming the current actor."""
    change = AuditChange(action, target_type, target_id, tenant_id, before, after)
    entry = _entry(change, audit_actor_current(), timezone.now())
    entry.save(force_insert=True)
    return entry


def audits_record(*, changes: Iterable[AuditChange]) -> int:
    """Write many entries in one statement (a billing run finalizing thousands of invoices)."""
    actor, at = audit_actor_current(), timezone.now()
    entries = [_entry(change, actor, at) for change in changes]
    AuditEntry.objects.bulk_create(entries, batch_size=2000)
    return len(entries)


# Tokens of the actor each running task replaced, by task id: an eager task run inside a
# request gives the request's actor back when it ends.
_task_tokens: dict[str, Any] = {}


@task_prerun.connect(dispatch_uid="percall.audit.task_prerun")
def _task_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    token = _actor_var.set(f"task:{getattr(task, 'name', 'unknown')}")
    _task_tokens[task_id or ""] = token


@task_postrun.connect(dispatch_uid="percall.audit.task_postrun")
def _task_postrun(task_id: str | None = None, **_: Any) -> None:
    token = _task_tokens.pop(task_id or "", None)
    if token is not None:
        try:
            _actor_var.reset(token)
        except ValueError:  # set in another context (a thread pool): leave no label behind
            _actor_var.set(None)


AUDIT_PAGE_MAX = 500
# What a tenant may read of its own entries: its invoices, credits, keys, team, webhooks and
# account. Leakage findings and admin edits are the operator's working notes about the tenant.
TENANT_VISIBLE_ACTIONS = (
    "invoice.", "credit_note.", "credit_grant.", "api_key.", "membership.",
    "webhook_endpoint.", "tenant.",
)  # fmt: skip


def audit_entry_list(
    *,
    scope_tenant_id: UUID | None,
    tenant_id: UUID | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Entries newest first, ``limit`` at most (up to ``AUDIT_PAGE_MAX``), older than entry
    ``before_id`` when paging. ``scope_tenant_id`` (a tenant-bound caller) sees only that
    tenant's entries of ``TENANT_VISIBLE_ACTIONS``; operator-wide configuration (no tenant) is
    the operator's alone. ``since`` is inclusive, ``until`` exclusive."""
    rows = AuditEntry.objects.order_by("-id")
    if scope_tenant_id is not None:
        visible = Q()
        for prefix in TENANT_VISIBLE_ACTIONS:
            visible |= Q(action__startswith=prefix)
        rows = rows.filter(visible, tenant_id=scope_tenant_id)
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    if action:
        # ``invoice`` matches every invoice action; ``invoice.void`` only that one.
        rows = (
            rows.filter(action=action)
            if "." in action
            else rows.filter(action__startswith=f"{action}.")
        )
    if target_type:
        rows = rows.filter(target_type=target_type)
    if target_id:
        rows = rows.filter(target_id=target_id)
    if since is not None:
        rows = rows.filter(occurred_at__gte=since)
    if until is not None:
        rows = rows.filter(occurred_at__lt=until)
    if before_id is not None:
        rows = rows.filter(id__lt=before_id)
    return list(rows[: max(1, min(limit, AUDIT_PAGE_MAX))])
