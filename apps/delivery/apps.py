from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "apps.delivery"
    label = "delivery"
    verbose_name = "Continuous delivery"

    def ready(self):
        from . import receivers  # noqa: F401  (new versions are evaluated; aliases follow rollouts)
