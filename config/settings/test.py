"""The test suite: SQLite unless DATABASE_URL says otherwise; tasks run in-process."""

from config.settings.base import *  # noqa: F403
from config.settings.base import CELERY_BROKER_URL

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests drive tasks directly; with a broker configured they are still run eagerly so each test
# sees their effects, while PostgreSQL tests exercise the real database.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL_FOR_WORKER_TESTS = CELERY_BROKER_URL
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Tests change data and read the report again at once: no caching unless a test asks for it.
PERCALL_LEAKAGE_REPORT_CACHE_SECONDS = 0
# Existing tests send many requests on one key within one pinned minute: the per-key rate is
# set far above them; tests of the limits set their own (tests/core/test_ratelimit.py).
PERCALL_RATE_KEY_PER_MINUTE = 1_000_000
