import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

application = get_wsgi_application()

# What Django and the apps built at start-up lives as long as the process: moved out of the
# collector's generations, it is no longer traversed by every full collection, which an
# ingestion batch (thousands of short-lived objects) would otherwise set off several times.
gc.freeze()
