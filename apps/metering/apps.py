from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


def privacy_settings_check(**kwargs: Any) -> list[checks.CheckMessage]:
    """Bad privacy settings fail ``manage.py check`` (and start-up), not the first batch."""
    from apps.metering.services.privacy import privacy_policy

    try:
        privacy_policy()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="metering.E001")]
    return []


class MeteringConfig(AppConfig):
    name = "apps.metering"
    label = "metering"

    def ready(self) -> None:
        from apps.core.metrics import metric_family_register
        from apps.metering.metrics import ingest_metrics, rollup_metrics

        metric_family_register("ingest", ingest_metrics)
        metric_family_register("rollups", rollup_metrics)
        checks.register(privacy_settings_check)
