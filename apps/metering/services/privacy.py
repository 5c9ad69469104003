"""Privacy at ingestion: the ``user`` attribute and denied properties are pseudonymized or
dropped before an event is hashed for dedupe or stored, so a raw end-user identifier never
reaches the database, its logs or its backups.

A pseudonym is ``anon_`` plus the first 24 hex digits (96 bits) of HMAC-SHA256 under the
privacy key: the same value always gives the same pseudonym (unique counts, group-bys and a
resent event's payload hash are unchanged), and without the key it cannot be recomputed from a
guessed value. Rotating the key changes every pseudonym from then on.

Settings (config/settings/base.py, docs/metering.md): ``PERCALL_PRIVACY_USER``,
``PERCALL_PRIVACY_DENY_PROPERTIES``, ``PERCALL_PRIVACY_DENY_ACTION``, ``PERCALL_PRIVACY_HASH_KEY``.
"""

import hashlib
import hmac
from typing import Any

import msgspec
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PSEUDONYM_PREFIX = "anon_"
PSEUDONYM_HEX_DIGITS = 24  # 96 bits: a collision is unlikely below ~10^14 distinct values
USER_ACTIONS = ("hash", "drop", "keep")
DENY_ACTIONS = ("hash", "drop")
# Where the default key comes from: SECRET_KEY, under a purpose of its own, so the privacy key
# is not SECRET_KEY itself (which signs sessions) and one does not reveal the other.
_KEY_PURPOSE = b"percall.metering.privacy-pseudonym"
# Pseudonyms of recent values, so that a user's thousands of calls cost one HMAC. Bounded and
# emptied when full; it lives in process memory only, as the request bodies themselves do.
_CACHE_SIZE = 65_536
# Verdicts by tuple of property names (which of them are denied). Bounded like the cache.
_SHAPES_SIZE = 10_000
_value_encoder = msgspec.json.Encoder(decimal_format="number", order="sorted")


class PrivacyPolicy:
    """What ingestion does with ``user`` and with denied properties; built from settings."""

    __slots__ = ("_key", "_shapes", "cache", "deny", "deny_action", "user_action")

    def __init__(
        self, *, user_action: str, deny: frozenset[str], deny_action: str, key: bytes
    ) -> None:
        self.user_action = user_action
        self.deny = deny  # lower case
        self.deny_action = deny_action
        self._key = key
        # Value -> pseudonym of recent strings; ``event_normalize`` reads it directly.
        self.cache: dict[str, str] = {}
        self._shapes: dict[tuple[str, ...], tuple[str, ...]] = {}  # names -> denied names

    def pseudonym(self, value: Any) -> str:
        """``anon_`` + 24 hex digits of HMAC-SHA256(key, value): a string as its UTF-8 bytes,
        any other JSON value as its canonical JSON (keys sorted)."""
        text = value if isinstance(value, str) else None
        if text is not None:
            found = self.cache.get(text)
            if found is not None:
                return found
            data = text.encode()
        else:
            data = _value_encoder.encode(value)
        digest = hmac.digest(self._key, data, "sha256").hex()[:PSEUDONYM_HEX_DIGITS]
        pseudonym = PSEUDONYM_PREFIX + digest
        if text is not None:
            if len(self.cache) >= _CACHE_SIZE:
                self.cache.clear()
            self.cache[text] = pseudonym
        return pseudonym

    def user_apply(self, user: str) -> str | None:
        """The ``user`` attribute as it is stored."""
        if self.user_action == "hash":
            return self.pseudonym(user)
        if self.user_action == "drop":
            return None
        return user

    def properties_apply(self, props: dict[str, Any]) -> dict[str, Any]:
        """``props`` with denied top-level keys (any case; dotted names taken literally)
        hashed or dropped, changed in place (a decoded event's own dict) and returned."""
        # Events of one sender share their property names, in the same order: the names as a
        # tuple find the verdict in one lookup, and only a new set of names is lower-cased.
        names = tuple(props)
        denied = self._shapes.get(names)
        if denied is None:
            denied = tuple(key for key in names if key.lower() in self.deny)
            if len(self._shapes) >= _SHAPES_SIZE:
                self._shapes.clear()
            self._shapes[names] = denied
        if not denied:
            return props
        if self.deny_action == "drop":
            for key in denied:
                del props[key]
            return props
        for key in denied:
            value = props[key]
            if value is not None:  # null says nothing about anyone
                cached = self.cache.get(value) if value.__class__ is str else None
                props[key] = cached or self.pseudonym(value)
        return props


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    value = value.strip().lower()
    if value not in allowed:
        raise ImproperlyConfigured(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _key(configured: str) -> bytes:
    if configured:
        return configured.encode()
    return hmac.digest(settings.SECRET_KEY.encode(), _KEY_PURPOSE, hashlib.sha256)


_policies: dict[tuple[Any, ...], PrivacyPolicy] = {}


def privacy_policy() -> PrivacyPolicy:
    """The policy the current settings describe (built once per distinct settings), or
    ImproperlyConfigured naming the setting."""
    deny = settings.PERCALL_PRIVACY_DENY_PROPERTIES
    names = deny.split(",") if isinstance(deny, str) else list(deny)
    signature = (
        settings.PERCALL_PRIVACY_USER,
        tuple(names),
        settings.PERCALL_PRIVACY_DENY_ACTION,
        settings.PERCALL_PRIVACY_HASH_KEY,
        settings.SECRET_KEY,
    )
    policy = _policies.get(signature)
    if policy is None:
        policy = PrivacyPolicy(
            user_action=_choice("PERCALL_PRIVACY_USER", signature[0], USER_ACTIONS),
            deny=frozenset(n.strip().lower() for n in names if n.strip()),
            deny_action=_choice("PERCALL_PRIVACY_DENY_ACTION", signature[2], DENY_ACTIONS),
            key=_key(signature[3]),
        )
        if len(_policies) > 16:  # settings change only in tests
            _policies.clear()
        _policies[signature] = policy
    return policy
