"""The admin's audit trail: who changed what, with the values before and after.

Django's admin already writes a ``LogEntry`` for every add, change and delete made through it
(who, when, which object, which fields). ``AuditedAdmin`` adds the values each changed field
had before and has after, for the object and for the rows of its inlines (a rate card's
charges, a price book's prices), so a reviewer sees "unit_price 0.002 → 0.003", not only
"changed unit_price". Secrets are never written there. The trail is read-only in the admin
(Audit trail, under Administration): nobody edits or deletes an entry through it."""

import json
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.db import transaction
from django.db.models import Model
from django.http import HttpRequest
from django.utils.html import format_html_join

from apps.core.audit import audit_record
from apps.core.models import AuditEntry

# Fields whose values never go in the trail (their change still does).
_SECRET = ("secret", "password", "key_hash", "token")


def _text(value: Any) -> Any:
    """A value as the trail stores it: JSON-safe, models by their name and id."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Model):
        return f"{value} ({value.pk})"
    if isinstance(value, list | tuple | dict):
        return json.loads(json.dumps(value, default=str))
    return str(value)


def _before(field: forms.Field, initial: Any) -> Any:
    if isinstance(field, forms.ModelChoiceField) and field.queryset is not None and initial:
        return field.queryset.filter(pk=initial).first() or initial
    return initial


def field_changes(form: forms.BaseForm, add: bool = False) -> dict[str, list[Any]]:
    """Each changed field of a bound, valid form as ``[before, after]`` (before is None on an
    add); secret fields as ``["…", "…"]``."""
    changes: dict[str, list[Any]] = {}
    for name in form.changed_data:
        if any(word in name for word in _SECRET):
            changes[name] = ["…", "…"]
            continue
        before = None if add else _before(form.fields[name], form.initial.get(name))
        changes[name] = [_text(before), _text(form.cleaned_data.get(name))]
    return changes


class AuditedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose log entries carry the values before and after each change."""

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> list[dict[str, Any]]:
        message = list(super().construct_change_message(request, form, formsets, add))
        values = field_changes(form, add)
        if values:
            message.append({"values": values})
        for formset in formsets or []:
            for inline in formset.forms:
                if inline in getattr(formset, "deleted_forms", []) or not inline.has_changed():
                    continue
                instance = inline.instance
                entry: dict[str, Any] = {
                    "values": field_changes(inline, add=instance._state.adding),
                    "name": str(instance._meta.verbose_name),
                    "object": str(instance),
                }
                message.append(entry)
        return message

    # The admin's changes go to the audit log too (``apps.core.audit``), beside Django's own
    # LogEntry, so a price edited in the admin is found with every other money change.
    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        entry = super().log_addition(request, obj, message)
        _admin_audit("create", obj, message)
        return entry

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        entry = super().log_change(request, obj, message)
        _admin_audit("change", obj, message)
        return entry

    # Deletions are audited with the delete itself, in one transaction: Django logs them
    # before deleting, outside any transaction, so a delete that then fails would be on record.
    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            _admin_audit("delete", obj, [])
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        with transaction.atomic():
            for obj in queryset:
                _admin_audit("delete", obj, [])
            super().delete_queryset(request, queryset)


def _changed_values(message: Any) -> list[tuple[str, Any, Any]]:
    """(field, before, after) of each change in an admin change message, inlines' fields
    prefixed with their row ("charge Tokens: unit_price")."""
    rows = []
    for part in message if isinstance(message, list) else []:
        where = f"{part['name']} {part['object']}: " if "object" in part else ""
        for name, pair in (part.get("values") or {}).items():
            rows.append((f"{where}{name}", pair[0], pair[1]))
    return rows


def _admin_audit(verb: str, obj: Model, message: Any) -> None:
    """One audit entry for an admin change: each changed field's value before and after."""
    changes = _changed_values(message)
    before = {name: old for name, old, _ in changes}
    after = {name: new for name, _, new in changes}
    meta = obj._meta
    tenant_id = obj.pk if meta.label_lower == "tenants.tenant" else getattr(obj, "tenant_id", None)
    audit_record(
        action=f"admin.{verb}",
        target_type=f"{meta.app_label}.{meta.model_name}",
        target_id=obj.pk,
        tenant_id=tenant_id,
        before=before or ({"object": str(obj)} if verb == "delete" else None),
        after=after or ({"object": str(obj)} if verb != "delete" else None),
    )


def _values_of(entry: LogEntry) -> list[tuple[str, str, str]]:
    try:
        message = json.loads(entry.change_message or "[]")
    except ValueError:
        return []
    return [(name, str(old), str(new)) for name, old, new in _changed_values(message)]


class ReadOnlyAdmin(admin.ModelAdmin):
    """A trail nobody adds to, edits or deletes through the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LogEntry)
class AuditTrailAdmin(ReadOnlyAdmin):
    """Every change made through the admin, newest first; read-only."""

    list_display = ["action_time", "user", "content_type", "object_repr", "action", "summary"]
    list_filter = ["action_flag", "content_type", "user"]
    search_fields = ["object_repr", "object_id", "user__username", "change_message"]
    date_hierarchy = "action_time"
    list_select_related = ["user", "content_type"]
    fields = ("action_time", "user", "content_type", "object_id", "object_repr", "action",
              "summary", "before_after")  # fmt: skip
    readonly_fields = fields

    @admin.display(description="action")
    def action(self, entry: LogEntry) -> str:
        return {1: "added", 2: "changed", 3: "deleted"}.get(entry.action_flag, "?")

    @admin.display(description="what changed")
    def summary(self, entry: LogEntry) -> str:
        return str(entry.get_change_message())

    @admin.display(description="before → after")
    def before_after(self, entry: LogEntry) -> str:
        rows = _values_of(entry)
        if not rows:
            return "—"
        return format_html_join("\n", "<div>{}: {} → {}</div>", rows)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """The audit log of money and configuration actions, newest first; read-only (the
    database refuses changes to it anyway)."""

    list_display = ["occurred_at", "actor", "action", "target_type", "target_id", "tenant_id"]
    list_filter = ["action", "target_type"]
    search_fields = ["actor", "action", "target_id", "request_id"]
    date_hierarchy = "occurred_at"
    ordering = ["-id"]
    fields = ("occurred_at", "actor", "action", "tenant_id", "target_type", "target_id",
              "before", "after", "request_id")  # fmt: skip
    readonly_fields = fields
