from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "apps.training"
    label = "training"
    verbose_name = "Training"

    def ready(self):
        from . import receivers  # noqa: F401  (retrain when a new dataset version arrives)
