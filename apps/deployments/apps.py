from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "apps.deployments"
    label = "deployments"

    def ready(self):
        from . import schema  # noqa: F401  (registers the OpenAPI auth extension of the predict views)
