from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "apps.deployments"
    label = "deployments"

    def ready(self):
        from . import receivers, schema  # noqa: F401  (token-cache invalidation; the predict views' OpenAPI auth)
