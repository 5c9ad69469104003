from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "apps.billing"
    label = "billing"

    def ready(self) -> None:
        from apps.billing.metrics import retention_metrics
        from apps.core.metrics import metric_family_register

        metric_family_register("retention", retention_metrics)
