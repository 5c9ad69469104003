"""Local development and the embedded demo (`make run`)."""

from config.settings.base import *  # noqa: F403
from config.settings.base import env

DEBUG = env.bool("DEBUG", default=True)

# Locally, emails (budget, credit and invoice notifications) are written to files under var/
# instead of going to an SMTP server that is not there; EMAIL_BACKEND overrides.
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", default=str(BASE_DIR / "var" / "mail"))  # noqa: F405

# Without Redis, one cache for every local process (the server, `pipeline_run`, a shell), so
# what one warms or locks the others see: files under var/.
if not REDIS_URL:  # noqa: F405
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(BASE_DIR / "var" / "cache"),  # noqa: F405
        }
    }
