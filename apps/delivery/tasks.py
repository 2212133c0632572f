from celery import shared_task


@shared_task(
    name="delivery.evaluate_candidate", bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def evaluate_candidate(self, evaluation_id: int) -> None:
    """Scores a candidate beside the champion on the worker. acks_late + reject_on_worker_lost hand
    the message back when the pool process dies, and the evaluation runs again; a duplicate of a
    finished one is a no-op."""
    from .services import candidate_evaluation_execute

    candidate_evaluation_execute(evaluation_id=evaluation_id, celery_task_id=self.request.id or "")


@shared_task(name="delivery.reap_lost_evaluations", ignore_result=True)
def reap_lost_evaluations() -> dict:
    """Beat (housekeeping queue): re-send QUEUED evaluations whose message was lost, or fail them."""
    from .reaper import candidate_evaluations_reap

    return candidate_evaluations_reap()


@shared_task(name="delivery.archive_undeployed_versions", ignore_result=True)
def archive_undeployed_versions() -> dict:
    """Beat (housekeeping queue): archive versions never deployed past REGISTRY_ARCHIVE_AFTER_DAYS."""
    from .archiving import model_versions_archive_undeployed

    return model_versions_archive_undeployed()
