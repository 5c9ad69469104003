"""API keys: created once with their plaintext shown once, checked in constant time, revocable."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from apps.core.audit import audit_record
from apps.tenants.errors import ApiKeyInvalid
from apps.tenants.models import ApiKey, Tenant

KEY_PREFIX = "pc_"
_PREFIX_CHARS = 8


@dataclass(frozen=True)
class IssuedApiKey:
    """A freshly created key and its plaintext, which is never stored and never shown again."""

    api_key: ApiKey
    plaintext: str


def _key_hash(plaintext: str) -> str:
    # Keys carry 240 bits of randomness, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _scopes_check(scopes: list[str]) -> list[str]:
    valid = set(ApiKey.Scope.values)
    if not scopes:
        raise ApiKeyInvalid(
            "scopes: at least one of ingest, read, admin is required", field="scopes"
        )
    unknown = [scope for scope in scopes if scope not in valid]
    if unknown:
        raise ApiKeyInvalid(
            f"scopes: unknown scope {unknown[0]!r} (expected ingest, read or admin)", field="scopes"
        )
    return sorted(set(scopes))


@transaction.atomic
def api_key_create(*, name: str, scopes: list[str], tenant: Tenant | None = None) -> IssuedApiKey:
    """Create a key. ``tenant`` binds it to that tenant; without one it is operator-wide."""
    prefix = secrets.token_hex(_PREFIX_CHARS // 2)
    plaintext = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(30)}"
    api_key = ApiKey(
        name=name,
        prefix=prefix,
        key_hash=_key_hash(plaintext),
        scopes=_scopes_check(scopes),
        tenant=tenant,
    )
    api_key.full_clean()
    api_key.save()
    audit_record(
        action="api_key.create",
        target_type="api_key",
        target_id=api_key.prefix,
        tenant_id=api_key.tenant_id,
        after={"name": api_key.name, "scopes": api_key.scopes, "prefix": api_key.prefix},
    )
    return IssuedApiKey(api_key=api_key, plaintext=plaintext)


def api_key_authenticate(*, plaintext: str) -> ApiKey | None:
    """The live key for ``plaintext``, or None. Compares hashes in constant time."""
    if not plaintext.startswith(KEY_PREFIX):
        return None
    prefix, _, secret = plaintext[len(KEY_PREFIX) :].partition("_")
    if len(prefix) != _PREFIX_CHARS or not secret:
        return None
    api_key = (
        ApiKey.objects.select_related("tenant")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )
    if api_key is None or not hmac.compare_digest(api_key.key_hash, _key_hash(plaintext)):
        return None
    return api_key


@transaction.atomic
def api_key_revoke(*, prefix: str) -> ApiKey:
    """Revoke a key by its public prefix; it fails on the very next request."""
    api_key = ApiKey.objects.select_for_update().get(prefix=prefix)
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at", "updated_at"])
        audit_record(
            action="api_key.revoke",
            target_type="api_key",
            target_id=api_key.prefix,
            tenant_id=api_key.tenant_id,
            before={"revoked_at": None},
            after={"revoked_at": api_key.revoked_at},
        )
    return api_key
