from celery import shared_task


@shared_task(name="deployments.evaluate_rollouts", ignore_result=True)
def evaluate_rollouts() -> dict:
    """Beat task: evaluate the gates of every running rollout (see services.gates)."""
    from .services.model_deployment_service import rollouts_evaluate_all

    return {str(k): v for k, v in rollouts_evaluate_all().items()}
