from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "apps.deployments"
    label = "deployments"

    def ready(self):
        from apps.core.bodylimit import error_shape_register

        from . import receivers, schema  # noqa: F401  (token-cache invalidation; the predict views' OpenAPI auth)
        from .serving.protocol import MLFLOW, error_body

        # A body over the limit is refused before any view runs: the scoring endpoints still answer
        # MLflow's error shape.
        error_shape_register(
            r"^/api/v1/deployments/[^/]+/(predict|invocations)$",
            lambda message, status: error_body(MLFLOW, message, status=status),
        )
