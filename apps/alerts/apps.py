from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "apps.alerts"
    label = "alerts"

    def ready(self) -> None:
        from apps.alerts.metrics import webhook_metrics
        from apps.core.metrics import metric_family_register

        metric_family_register("webhooks", webhook_metrics)
