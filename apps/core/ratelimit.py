"""Fixed-window rate counters in the Django cache, shared by every process that shares it.

A budget is ``limit`` units per window of ``window_seconds``, windows aligned to the epoch
(a 60 s window runs from :00 to :59 of each minute, UTC). Each window has its own cache key,
created with ``cache.add`` and counted with ``cache.incr``: both are single atomic commands
on Redis (``SET NX``, ``INCRBY``), so concurrent callers on any number of machines never
lose a count. A charge that would go over the limit is refunded at once (``cache.decr``): a
refused call consumes nothing, so a client retrying after ``Retry-After`` gets the whole
budget of the new window.

A fixed window lets a client spend up to twice its budget across one window boundary; for
abuse protection that bound is fine and buys exact, cheap ``Retry-After`` values.

When the cache cannot be reached the counter lets the call through (and logs it): these are
abuse limits, and refusing every request or event during a cache outage would do more harm
than the abuse they stop.
"""

import hashlib
import logging
import math
from dataclasses import dataclass

from django.core.cache import cache
from django.utils import timezone

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateDecision:
    """The answer for one charge against a budget.

    ``remaining`` is what is left of the window after this charge (after a refusal: what was
    left before it); ``retry_after`` is whole seconds until the window ends, at least 1, and 0
    when the charge was allowed."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: int


def rate_key(*parts: str) -> str:
    """A cache-safe key for a budget: callers' text (tenant names, key prefixes) is hashed, so
    no input can make a key longer than the cache allows or collide with another budget."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()
    return f"rate:{digest}"


def rate_consume(*, key: str, limit: int, window_seconds: int, cost: int = 1) -> RateDecision:
    """Charge ``cost`` units against budget ``key`` (from ``rate_key``) of ``limit`` units per
    ``window_seconds``; refused, and nothing charged, when the window has less than ``cost``
    left."""
    return rates_consume(costs={key: cost}, limit=limit, window_seconds=window_seconds)


def rates_consume(*, costs: dict[str, int], limit: int, window_seconds: int) -> RateDecision:
    """Charge each budget ``key`` its ``cost`` (``limit`` units per ``window_seconds`` each), all
    or nothing: when any would go over, every charge is refunded and the answer is the refusal
    (``remaining`` of that budget). Allowed answers report the least ``remaining``."""
    now = timezone.now().timestamp()
    window = math.floor(now / window_seconds)
    # Seconds until the window's end, rounded up: a client waiting this long lands in the next.
    left = max(1, math.ceil((window + 1) * window_seconds - now))
    charged: list[tuple[str, int]] = []
    remaining = limit
    try:
        for key, cost in costs.items():
            counter = f"{key}:{window_seconds}:{window}"
            used = _charge(counter, cost, timeout=2 * window_seconds)
            charged.append((counter, cost))
            if used > limit:
                for done, amount in charged:
                    cache.decr(done, amount)
                return RateDecision(False, limit, max(0, limit - (used - cost)), left)
            remaining = min(remaining, limit - used)
    except Exception:  # any cache failure: fail open, see the module docstring
        logger.warning("rate limit counter unavailable; allowing", exc_info=True)
        return RateDecision(True, limit, limit, 0)
    return RateDecision(True, limit, remaining, 0)


def _charge(counter: str, cost: int, *, timeout: int) -> int:
    # The key outlives its window (timeout twice the window from its first use), so ``incr``
    # finds it unless the cache evicted it; then it is created again once.
    cache.add(counter, 0, timeout=timeout)
    try:
        return int(cache.incr(counter, cost))
    except ValueError:
        cache.add(counter, 0, timeout=timeout)
        return int(cache.incr(counter, cost))
