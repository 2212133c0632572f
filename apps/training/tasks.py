from celery import shared_task


@shared_task(name="training.run", bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_training(self, run_id: int) -> None:
    """Executes one attempt of a run. acks_late + reject_on_worker_lost hand the message back when the
    pool process dies; attempts are counted in the database (see training_pipeline._claim)."""
    from apps.training.services.training_pipeline import training_run_execute

    training_run_execute(run_id=run_id, celery_task_id=self.request.id or "")


@shared_task(name="training.reap_stale_runs", ignore_result=True)
def reap_stale_runs() -> dict:
    """Beat: requeue or fail RUNNING runs whose worker stopped sending heartbeats, and QUEUED runs
    whose queue message was lost."""
    from apps.training.services.reaper import training_runs_reap

    return training_runs_reap()


@shared_task(name="training.remove_orphaned_folders", ignore_result=True)
def remove_orphaned_folders() -> dict:
    """Beat (hourly): remove attempt and temp folders that killed attempts left behind and that no
    live run or recorded artifact owns (see services.cleanup); each removal is logged with its reason."""
    from apps.training.services.cleanup import training_orphans_remove

    return training_orphans_remove().counts()


@shared_task(name="training.retrain_experiment", bind=True, ignore_result=True)
def retrain_experiment(self, experiment_id: int, schedule_id: int | None = None, force: bool = False) -> int | None:
    """Beat: "retrain experiment X on its dataset's newest version" (kwargs set by TrainingSchedule);
    `force` retrains even when the data and settings are unchanged."""
    from apps.training.services.schedules import experiment_retrain_scheduled

    run = experiment_retrain_scheduled(
        experiment_id=experiment_id, schedule_id=schedule_id, tick=self.request.id, force=force
    )
    return run.pk if run else None
