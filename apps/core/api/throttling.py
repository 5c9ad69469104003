"""The per-API-key request rate for the whole API (DRF ``DEFAULT_THROTTLE_CLASSES``).

Over the rate a call is answered 429 with ``Retry-After`` (whole seconds until the window
ends) and ``{"error": {"code": "rate_limited", "message": ...}}``; see apps/core/ratelimit.py
for the counter and docs/operations-limits.md for the settings.
"""

from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from apps.core.ratelimit import RateDecision, rate_consume, rate_key

WINDOW_SECONDS = 60


class RateLimited(exceptions.Throttled):
    """A 429 whose code is ours; DRF's handler adds ``Retry-After`` from ``wait``."""

    default_code = "rate_limited"


def rate_limited(decision: RateDecision, message: str) -> RateLimited:
    """The 429 for a refused ``decision``: ``message`` says which budget, then when to retry."""
    return RateLimited(
        wait=decision.retry_after,
        detail=f"{message}; retry in {decision.retry_after} s",
    )


class ApiKeyRateThrottle(BaseThrottle):
    """``PERCALL_RATE_KEY_PER_MINUTE`` requests a minute per API key (0: no limit).

    Keyed by the key's public prefix, read from ``request.auth`` (the ApiKey the
    authentication returned) rather than through ``apps.tenants``, which core may not import.
    Calls without an API key (a rejected key is already a 401) are not counted here."""

    def allow_request(self, request: Request, view: Any) -> bool:
        limit = settings.PERCALL_RATE_KEY_PER_MINUTE
        prefix = getattr(request.auth, "prefix", None)
        if limit <= 0 or not prefix:
            return True
        decision = rate_consume(
            key=rate_key("api-key", prefix), limit=limit, window_seconds=WINDOW_SECONDS
        )
        if not decision.allowed:
            # Raised rather than returning False, so the 429 carries our code and message.
            raise rate_limited(decision, f"rate: this API key is over {limit} requests a minute")
        return True
