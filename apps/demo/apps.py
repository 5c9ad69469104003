from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo business that ``make run`` loads: it drives the product only through its
    services, like any other caller."""

    name = "apps.demo"
    label = "demo"
