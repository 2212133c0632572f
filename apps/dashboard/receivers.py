"""Run progress for the dashboard: the worker's epoch signal, pushed to the dashboard group.

The run's own group (training-run-<id>) carries every log line; dashboards only need progress, so
they get it here instead of subscribing to each run's log stream.
"""

from django.dispatch import receiver

from apps.training.signals import run_epoch_completed

from .live import DASHBOARD_GROUP, progress_due


@receiver(run_epoch_completed, dispatch_uid="dashboard.push_run_progress")
def push_run_progress(sender, run, epoch, metrics, **kwargs):
    from apps.core import live as training_live
    from apps.training.services.runs import progress_message

    if not progress_due(run.pk, final=run.total_epochs and epoch >= run.total_epochs):
        return
    # The training app's publisher sends from a background thread: the training loop never waits on Redis.
    training_live.publish(DASHBOARD_GROUP, progress_message(run, metrics))
