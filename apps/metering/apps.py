from django.apps import AppConfig


class MeteringConfig(AppConfig):
    name = "apps.metering"
    label = "metering"

    def ready(self) -> None:
        from apps.core.metrics import metric_family_register
        from apps.metering.metrics import ingest_metrics, rollup_metrics

        metric_family_register("ingest", ingest_metrics)
        metric_family_register("rollups", rollup_metrics)
