from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Portal core"

    def ready(self):
        from . import schema  # noqa: F401  (registers the OpenAPI auth extension)
        from .permissions_sync import sync_role_permissions

        post_migrate.connect(sync_role_permissions, dispatch_uid="core.sync_role_permissions")
