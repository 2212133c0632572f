from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "apps.training"
    label = "training"
    verbose_name = "Training"

    def ready(self):
        from apps.core.health import problem_source_register

        from . import receivers  # noqa: F401  (retrain when a new dataset version arrives)
        from apps.frameworks.discovery import plugin_problems

        problem_source_register(plugin_problems)
