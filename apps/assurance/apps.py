from django.apps import AppConfig


class AssuranceConfig(AppConfig):
    name = "apps.assurance"
    label = "assurance"
