"""Signing people in to the web pages (the partner portal, the finance console), with a
lockout after repeated failures so a password cannot be guessed at speed.

Failures are counted per username and per client address in the shared cache (Redis in
production), with atomic increments: ``PERCALL_SIGN_IN_MAX_FAILURES`` failures within
``PERCALL_SIGN_IN_LOCKOUT_SECONDS`` lock that username (from anywhere) and that address (for
any username) for the same time. A locked sign-in is refused before the password is checked,
with the same answer whether or not the password was right, so the lock cannot be probed."""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.http import HttpRequest

from apps.core.errors import ApplicationError


class SignInLocked(ApplicationError):
    code = "sign_in_locked"
    status_code = 429


class SignInFailed(ApplicationError):
    code = "sign_in_failed"
    status_code = 400


@dataclass(frozen=True)
class _Keys:
    user: str
    address: str


def _keys(username: str, address: str) -> _Keys:
    return _Keys(f"sign-in:user:{username.strip().lower()}", f"sign-in:addr:{address}")


def client_address(request: HttpRequest) -> str:
    """The client's address as the server saw it (behind a proxy, configure the proxy to set
    REMOTE_ADDR; a client-supplied X-Forwarded-For is never trusted here)."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def _locked(keys: _Keys) -> bool:
    limit = settings.PERCALL_SIGN_IN_MAX_FAILURES
    counts = cache.get_many([keys.user, keys.address])
    return any(int(n) >= limit for n in counts.values())


def _failed(keys: _Keys) -> None:
    seconds = settings.PERCALL_SIGN_IN_LOCKOUT_SECONDS
    for key in (keys.user, keys.address):
        if not cache.add(key, 1, timeout=seconds):  # the window starts at the first failure
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr: start again
                cache.add(key, 1, timeout=seconds)


def sign_in_check(*, request: HttpRequest, username: str, password: str) -> AbstractBaseUser:
    """The active user these credentials name, or ``SignInLocked`` / ``SignInFailed``. A
    success clears the username's failures (not the address's: one good password must not
    unlock an address that is guessing at others)."""
    keys = _keys(username, client_address(request))
    if _locked(keys):
        minutes = max(1, settings.PERCALL_SIGN_IN_LOCKOUT_SECONDS // 60)
        raise SignInLocked(
            f"Too many failed sign-ins: try again in {minutes} minutes.", field="username"
        )
    user = authenticate(request, username=username, password=password)
    if user is None or not user.is_active:
        _failed(keys)
        raise SignInFailed("The username or password is not right.", field="password")
    cache.delete(keys.user)
    return user
