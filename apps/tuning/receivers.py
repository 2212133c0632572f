"""Tuning's receivers of the training signals (connected in TuningConfig.ready)."""


def on_run_epoch_completed(sender, run, epoch, metrics, **kwargs):
    if not run.trial_id:
        return
    from .services import trial_record_epoch

    trial_record_epoch(run=run, epoch=epoch, metrics=metrics)


def on_run_finished(sender, run, **kwargs):
    if not run.trial_id:
        return
    from .services import trial_record_run_end

    trial_record_run_end(run_id=run.pk)
