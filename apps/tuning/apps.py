from django.apps import AppConfig


class TuningConfig(AppConfig):
    name = "apps.tuning"
    label = "tuning"
    verbose_name = "Hyperparameter tuning"

    def ready(self):
        from apps.training.signals import run_epoch_completed, run_finished

        from . import receivers

        run_epoch_completed.connect(receivers.on_run_epoch_completed, dispatch_uid="tuning.run_epoch_completed")
        run_finished.connect(receivers.on_run_finished, dispatch_uid="tuning.run_finished")
