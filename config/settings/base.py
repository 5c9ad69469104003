"""Settings shared by every environment, read from the environment through django-environ.

With nothing set Percall runs embedded: SQLite in WAL mode and Celery tasks executed in-process.
``DATABASE_URL=postgres://...`` switches to PostgreSQL, ``CELERY_BROKER_URL=redis://...`` to real
Celery workers and beat, ``REDIS_URL`` (default: the broker, when it is Redis) to a shared cache.
"""

from pathlib import Path
from typing import Any

import environ

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

SECRET_KEY = env("SECRET_KEY", default="percall-insecure-local-key")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served locally, no CDN
    "apps.core",
    "apps.tenants",
    "apps.metering",
    "apps.catalog",
    "apps.billing",
    "apps.costs",
    "apps.chargeback",
    "apps.assurance",
    "apps.alerts",
    "apps.portal",
    "apps.console",
    "apps.demo",
]

MIDDLEWARE = [
    # First, so that every log record of a request, the other middleware's too, carries its id.
    "apps.core.middleware.RequestIdMiddleware",
    "apps.core.middleware.ApiNulRefusedMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# The embedded default is SQLite in WAL mode: readers never block the single writer, and
# IMMEDIATE transactions take the write lock up front so two writers queue instead of failing
# half-way with "database is locked".
SQLITE_PATH = env("SQLITE_PATH", default=str(VAR_DIR / "percall.sqlite3"))
DATABASE_URL = env("DATABASE_URL", default="") or f"sqlite:///{SQLITE_PATH}"  # empty = unset
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
        ),
    }
else:
    # Persistent connections: ingestion keeps a per-connection staging table warm.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["ATOMIC_REQUESTS"] = False  # transactions belong to services
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USING_POSTGRES = DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql")

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="")
# Without a broker every task runs in-process at enqueue time (after commit, see core.jobs).
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True  # a task killed mid-run is redelivered; every task is idempotent
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Redis keeps a delivered message in its "unacked" set until the task returns; when a worker
# dies with it (SIGKILL, OOM, a lost machine) a live worker puts it back on its queue once it is
# older than the visibility timeout, scanning every restore interval (docs/operations.md). The
# timeout must exceed the longest hard time limit below (1 h), or a task still running would be
# handed to a second worker (harmless, every task being idempotent, but wasted work).
CELERY_BROKER_VISIBILITY_TIMEOUT = env.int("CELERY_BROKER_VISIBILITY_TIMEOUT", default=7200)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT,
    # Seconds between two scans for messages of dead workers (kombu's default scans every
    # 100 s: a 10 s timer throttled to one call in ten).
    "unacked_restore_interval": env.int("CELERY_BROKER_RESTORE_SECONDS", default=100),
    "unacked_restore_throttle": 1,
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 600
CELERY_TASK_SOFT_TIME_LIMIT = 540
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ROUTES = {
    "metering.*": {"queue": "rollups"},
    "billing.invoice_render_pdf": {"queue": "pdfs"},
    "billing.*": {"queue": "billing"},
    "costs.*": {"queue": "rollups"},
    "chargeback.*": {"queue": "billing"},
    "assurance.*": {"queue": "billing"},
    "alerts.webhook_deliveries_run": {"queue": "webhooks"},
    "alerts.outbox_dispatch": {"queue": "webhooks"},
    "alerts.*": {"queue": "default"},
}
CELERY_TASK_DEFAULT_QUEUE = "default"

# The one beat schedule (STYLE 13): each entry says why its cadence.
CELERY_BEAT_SCHEDULE = {
    # Ingestion kicks a rollup after each commit; this sweep is the safety net that bounds
    # rollup lag to a minute if a kick was lost (worker restart, broker blip).
    "metering-rollup-sweep": {"task": "metering.rollup_pending", "schedule": 60.0},
    # Partitions for the next months exist long before the first event lands in them; daily
    # is plenty since each run looks two months ahead.
    "metering-partitions": {"task": "metering.event_partitions_ensure", "schedule": 86400.0},
    # Retention is counted in days and an hour's delay in deleting costs nothing: once a day
    # deletes a day's worth of expired events (a backlog continues in follow-up runs).
    "billing-events-retention-purge": {
        "task": "billing.events_retention_purge",
        "schedule": 86400.0,
    },
    # Periods end at midnight in each tenant's timezone, so some period ends every hour
    # somewhere; every 5 minutes keeps drafts fresh through the grace period and finalizes
    # soon after it, and a run with nothing due costs one query.
    "billing-run": {"task": "billing.billing_run", "schedule": 300.0},
    # A PDF render is queued after its invoice's commit; a process killed in between, or a
    # render given up on, leaves the stored PDF behind. Downloads render on the fly meanwhile,
    # so ten minutes is soon enough, and a sweep with nothing missing is one query.
    "billing-invoice-pdfs": {"task": "billing.invoice_pdfs_missing", "schedule": 600.0},
    # Cost rollups follow the usage rollups they derive from: each minute bounds cost lag to
    # about the rollup's own.
    "costs-rollup": {"task": "costs.cost_rollup_pending", "schedule": 60.0},
    # Price-book and FX changes are rare; re-costing the days they touch within ten minutes is
    # soon enough, and a check with nothing stale is one grouped query.
    "costs-reprice": {"task": "costs.cost_days_reprice", "schedule": 600.0},
    # Statements for the month just closed are drafted once a day (the first run after month
    # end drafts them; later runs refresh drafts with late usage until finance issues them).
    "chargeback-statements": {"task": "chargeback.statements_run", "schedule": 86400.0},
    # Webhook retries are due as soon as 5 s after a failure (Standard Webhooks' schedule);
    # a sweep with nothing due is one indexed query.
    "alerts-webhook-deliveries": {"task": "alerts.webhook_deliveries_run", "schedule": 5.0},
    # Publishing kicks a dispatch after each commit; this sweep catches a lost kick.
    "alerts-outbox-dispatch": {"task": "alerts.outbox_dispatch", "schedule": 60.0},
    # Dispatch kicks the email sender after queuing mail; this sweep retries failed sends
    # (an SMTP outage) every 5 minutes until they go or run out of tries.
    "alerts-emails-send": {"task": "alerts.email_notifications_send", "schedule": 300.0},
    # Leakage is a finance concern, not a real-time one: a daily scan of the current and the
    # last closed month finds it long before the month's books close (period closes also
    # trigger a scan of the period just finalized).
    "assurance-leakage-scan": {"task": "assurance.leakage_scan", "schedule": 86400.0},
    # Budgets are read from rollups that lag about a minute; every 5 minutes crosses a
    # threshold soon after it happens at the cost of one grouped query per measure.
    "alerts-budgets-evaluate": {"task": "alerts.budgets_evaluate", "schedule": 300.0},
    # Anomalies compare whole hours, so hourly is as often as a new hour can be judged.
    "alerts-anomalies-detect": {"task": "alerts.anomalies_detect", "schedule": 3600.0},
    # Forecasts work on whole days; one snapshot a day is what accuracy is measured on.
    "alerts-forecasts-snapshot": {"task": "alerts.forecasts_snapshot", "schedule": 86400.0},
    # The rollup sweep runs every minute; checking its queue as often tells the operator of a
    # stalled pipeline within a minute of the limit (one aggregate query on a small table).
    "alerts-pipeline-lag": {"task": "alerts.pipeline_lag_evaluate", "schedule": 60.0},
}

# --- Cache ----------------------------------------------------------------------------------
_default_redis = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else ""
REDIS_URL = env("REDIS_URL", default=_default_redis)
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.tenants.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "apps.core.api.schema.ApiSchema",
    "EXCEPTION_HANDLER": "apps.core.api.exceptions.exception_handler",
    # ?format= is ours (the catalog export's yaml), not DRF's renderer switch, which 404s
    # any format without a renderer.
    "URL_FORMAT_OVERRIDE": None,
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": None,
    # Per-API-key request rate (PERCALL_RATE_KEY_PER_MINUTE); docs/operations-limits.md.
    "DEFAULT_THROTTLE_CLASSES": ["apps.core.api.throttling.ApiKeyRateThrottle"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Percall API",
    "DESCRIPTION": "Usage-based billing and chargeback for API and AI products.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Ingestion ------------------------------------------------------------------------------
PERCALL_INGEST_MAX_BODY_BYTES = env.int("PERCALL_INGEST_MAX_BODY_BYTES", default=5 * 1024 * 1024)
PERCALL_INGEST_MAX_EVENTS = env.int("PERCALL_INGEST_MAX_EVENTS", default=5000)
# Abuse limits (docs/operations-limits.md); 0 turns one off. Requests a minute per API key:
# 100 a second, four times what the ingestion bench sends on one key (1,000-event batches).
PERCALL_RATE_KEY_PER_MINUTE = env.int("PERCALL_RATE_KEY_PER_MINUTE", default=6000)
# Events a minute per tenant, counted whole batches at a time; off by default, since a
# legitimate burst must never be refused unless the operator asked for a ceiling.
PERCALL_INGEST_EVENTS_PER_MINUTE = env.int("PERCALL_INGEST_EVENTS_PER_MINUTE", default=0)
PERCALL_INGEST_LATE_WINDOW_DAYS = env.int("PERCALL_INGEST_LATE_WINDOW_DAYS", default=35)
PERCALL_INGEST_FUTURE_SKEW_SECONDS = env.int("PERCALL_INGEST_FUTURE_SKEW_SECONDS", default=300)
# The currency of an event's ``cost`` when the event does not say (ISO 4217).
PERCALL_DEFAULT_COST_CURRENCY = env("PERCALL_DEFAULT_COST_CURRENCY", default="USD")
# Wait this long after an ingest commit before rolling up, so a burst is rolled up once.
PERCALL_ROLLUP_DEBOUNCE_SECONDS = env.int("PERCALL_ROLLUP_DEBOUNCE_SECONDS", default=2)
# Queue rows a rollup claims per transaction: what a killed worker can lose (it is rolled
# back and rebuilt by the next run) and how long each transaction holds its hours' locks.
PERCALL_ROLLUP_CLAIM_PAIRS = env.int("PERCALL_ROLLUP_CLAIM_PAIRS", default=20000)
# How many rollup workers share the queue (the rollups queue's concurrency, summed over
# machines): a queue shorter than that many claims is split between them, so a backfill of
# 20,000 hours keeps both of two workers busy instead of one. 1 turns the split off.
PERCALL_ROLLUP_WORKERS = env.int("PERCALL_ROLLUP_WORKERS", default=2)

# Raw events older than this many days are deleted once rolled up and billed (never before;
# docs/metering.md, Retention); 0 keeps them forever. 400 days: a year plus the 35-day late
# window, so a whole year of raw events stays for audits, disputes and year-over-year unique
# counts, and it is the longest range the usage API reads at once.
PERCALL_RAW_EVENT_RETENTION_DAYS = env.int("PERCALL_RAW_EVENT_RETENTION_DAYS", default=400)

# --- Privacy at ingestion (docs/metering.md, apps/metering/services/privacy.py) -------------
# The ``user`` attribute: hash (a keyed pseudonym, so unique counts and group-bys still work),
# drop, or keep as sent.
PERCALL_PRIVACY_USER = env("PERCALL_PRIVACY_USER", default="hash")
# Top-level ``properties`` names (any case; dotted OpenTelemetry names taken literally) that
# are hashed or dropped before anything is stored: direct identifiers and contact details,
# including the OpenTelemetry ``user.*``, ``enduser.id`` and client address attributes.
# Set it empty to store every property as sent.
PERCALL_PRIVACY_DENY_PROPERTIES = env.list(
    "PERCALL_PRIVACY_DENY_PROPERTIES",
    default=[
        "email", "email_address", "user_email", "phone", "phone_number", "mobile",
        "ip", "ip_address", "client_ip", "remote_addr", "x-forwarded-for",
        "first_name", "last_name", "full_name", "username", "user_name", "user_id",
        "address", "street_address", "postal_code", "date_of_birth", "ssn",
        "user.id", "user.email", "user.name", "user.full_name",
        "enduser.id", "client.address", "http.client_ip",
    ],
)  # fmt: skip
PERCALL_PRIVACY_DENY_ACTION = env("PERCALL_PRIVACY_DENY_ACTION", default="hash")
# The HMAC key of the pseudonyms; empty: derived from SECRET_KEY. Changing it (or SECRET_KEY
# while it is empty) changes every pseudonym from then on.
PERCALL_PRIVACY_HASH_KEY = env("PERCALL_PRIVACY_HASH_KEY", default="")

# --- Billing --------------------------------------------------------------------------------
# Who issues the invoices: shown on every invoice and credit note.
PERCALL_OPERATOR_NAME = env("PERCALL_OPERATOR_NAME", default="Percall demo operator")
PERCALL_OPERATOR_ADDRESS = env("PERCALL_OPERATOR_ADDRESS", default="1 Example Street, Springfield")
PERCALL_OPERATOR_EMAIL = env("PERCALL_OPERATOR_EMAIL", default="billing@example.com")
PERCALL_OPERATOR_TAX_ID = env("PERCALL_OPERATOR_TAX_ID", default="")
# The operator's own currency: credit packs that name none, and cost reporting.
PERCALL_OPERATOR_CURRENCY = env("PERCALL_OPERATOR_CURRENCY", default="USD")
# After a period ends its draft invoice is refreshed for this long, so that late events still
# land on it; then it is finalized. Later events go on the next invoice as an adjustment.
PERCALL_BILLING_GRACE_SECONDS = env.int("PERCALL_BILLING_GRACE_SECONDS", default=3600)
# A metering outage is not zero usage. Billing never finalizes a period whose usage still waits
# in the rollup queue; when the oldest waiting row is older than this (seconds; 0 = never
# alert), the pipeline is behind: a ``pipeline.lagging`` alert goes to the operator's webhooks
# and to these addresses. The rollup sweep runs every minute, so 10 minutes is a real stall.
PERCALL_ROLLUP_LAG_ALERT_SECONDS = env.int("PERCALL_ROLLUP_LAG_ALERT_SECONDS", default=600)
PERCALL_OPERATOR_ALERT_EMAILS = env.list("PERCALL_OPERATOR_ALERT_EMAILS", default=[])
# Subscriptions a billing run locks, prices and commits at a time: a killed run loses at most
# one chunk's work, and the next run (redelivery or the 5-minute beat) resumes after the last
# committed chunk from each subscription's billed_through.
PERCALL_BILLING_RUN_CHUNK = env.int("PERCALL_BILLING_RUN_CHUNK", default=500)
# Days from issue to the due date printed on an invoice.
PERCALL_INVOICE_DUE_DAYS = env.int("PERCALL_INVOICE_DUE_DAYS", default=30)
# Invoice numbers: PREFIX-YEAR-000123, gapless per year.
PERCALL_INVOICE_NUMBER_PREFIX = env("PERCALL_INVOICE_NUMBER_PREFIX", default="PC")
PERCALL_CREDIT_NOTE_NUMBER_PREFIX = env("PERCALL_CREDIT_NOTE_NUMBER_PREFIX", default="CN")
PERCALL_STATEMENT_NUMBER_PREFIX = env("PERCALL_STATEMENT_NUMBER_PREFIX", default="SB")

# --- Assurance ------------------------------------------------------------------------------
# Usage rated at zero is a leakage finding once it is more than this many times its charge's
# free allowance (free units and zero-priced tiers).
PERCALL_LEAKAGE_OVER_PLAN_FACTOR = env.int("PERCALL_LEAKAGE_OVER_PLAN_FACTOR", default=10)
# A tenant or feature losing less than this (operator currency) in a month is no finding.
PERCALL_LEAKAGE_MARGIN_FLOOR = env("PERCALL_LEAKAGE_MARGIN_FLOOR", default="1.00")
# The reconciliation report reprices the month's invoices; its figures (all but the findings'
# amounts at risk, read live) are cached this long, and until the month's next scan.
PERCALL_LEAKAGE_REPORT_CACHE_SECONDS = env.int("PERCALL_LEAKAGE_REPORT_CACHE_SECONDS", default=300)

# --- Analytics query caps (docs/operations-limits.md) ----------------------------------------
# At most this many group_by dimensions, and this many groups in one answer (refused, never
# truncated); periods are at most 366 days (apps/costs/selectors.py).
PERCALL_ANALYTICS_MAX_DIMENSIONS = env.int("PERCALL_ANALYTICS_MAX_DIMENSIONS", default=3)
PERCALL_ANALYTICS_MAX_GROUPS = env.int("PERCALL_ANALYTICS_MAX_GROUPS", default=10_000)

# --- Budgets and notifications --------------------------------------------------------------
# How long the limits check's cached answer lives. Evaluations refresh it when a budget's
# state changes; the TTL only bounds staleness when a refresh is lost.
PERCALL_LIMITS_CACHE_SECONDS = env.int("PERCALL_LIMITS_CACHE_SECONDS", default=60)
# Budget, credit and invoice emails go through Django's email backend (SMTP by default).
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default=PERCALL_OPERATOR_EMAIL)

# --- Web pages (partner portal, finance console) --------------------------------------------
# Failed sign-ins per username and per address before both are locked for the lockout time.
PERCALL_SIGN_IN_MAX_FAILURES = env.int("PERCALL_SIGN_IN_MAX_FAILURES", default=5)
PERCALL_SIGN_IN_LOCKOUT_SECONDS = env.int("PERCALL_SIGN_IN_LOCKOUT_SECONDS", default=900)

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env("STATIC_ROOT", default=str(VAR_DIR / "static"))
MEDIA_ROOT = env("MEDIA_ROOT", default=str(VAR_DIR / "media"))

# --- Operations (docs/operations.md) ----------------------------------------------------------
# Bearer token /metrics asks for; empty: open, for a Prometheus on a private network.
PERCALL_METRICS_TOKEN = env("PERCALL_METRICS_TOKEN", default="")
# Probes and scrapers often speak plain HTTP to the pod itself: no redirect to HTTPS for them.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# A worker imports these at start: their signal handlers put the task id on log records and
# count task failures for /metrics.
CELERY_IMPORTS = ["apps.core.logging", "apps.core.metrics"]
# Workers log through LOGGING below (JSON in production, with the task id), not Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# "plain" lines locally, "json" (one object per line, the default in production) for shippers.
LOG_FORMAT = env("LOG_FORMAT", default="plain")

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "apps.core.logging.JsonFormatter"},
    },
    "filters": {
        "font_subset": {"()": "config.logfilters.WithoutFontSubsetNotice"},
        "request_id": {"()": "apps.core.logging.RequestIdFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["font_subset", "request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # WeasyPrint and its font subsetter log every step of every PDF at INFO.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}
