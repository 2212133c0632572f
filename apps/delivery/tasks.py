from celery import shared_task


@shared_task(name="delivery.evaluate_candidate", bind=True, acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def evaluate_candidate(self, evaluation_id: int) -> None:
    """Scores a candidate beside the champion on the worker. acks_late + reject_on_worker_lost hand
    the message back when the pool process dies, and the evaluation runs again; a duplicate of a
    finished one is a no-op."""
    from .services import candidate_evaluation_execute

    candidate_evaluation_execute(evaluation_id=evaluation_id, celery_task_id=self.request.id or "")
