"""Delivery listens to the registry and the deployments instead of being called by them.

- A new ModelVersion: evaluations for the policies it feeds (after the registration commits, in their
  own transaction, so a delivery problem can never undo a registration).
- A rollout DeploymentEvent: the registry's aliases follow it in the same transaction (so the alias
  and the rollout cannot disagree), and when the rollout ended the next waiting candidate goes.
"""
import logging

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from apps.deployments.choices import EventKind
from apps.deployments.models import DeploymentEvent
from apps.registry.models import ModelVersion

logger = logging.getLogger(__name__)

ENDED = {EventKind.ROLLOUT_COMPLETED, EventKind.ROLLOUT_ROLLED_BACK, EventKind.ROLLOUT_ABORTED}


@receiver(post_save, sender=ModelVersion, dispatch_uid="delivery.evaluate_new_version")
def evaluate_new_version(sender, instance, created, **kwargs):
    if not created:
        return
    version_id = instance.pk

    def request():
        from .services import candidate_evaluations_request

        try:
            candidate_evaluations_request(version=ModelVersion.objects.select_related("registered_model").get(pk=version_id))
        except Exception:
            logger.exception("delivery: evaluations for model version %s were not queued", version_id)

    transaction.on_commit(request)


@receiver(post_save, sender=DeploymentEvent, dispatch_uid="delivery.follow_rollout")
def follow_rollout(sender, instance, created, **kwargs):
    if not created or instance.rollout_id is None:
        return
    if instance.kind not in {EventKind.ROLLOUT_STARTED, *ENDED}:
        return
    from apps.registry.services import ROLLOUT_COMPLETED, ROLLOUT_ENDED, ROLLOUT_STARTED, model_aliases_follow_rollout

    rollout = instance.rollout
    moment = {EventKind.ROLLOUT_STARTED: ROLLOUT_STARTED, EventKind.ROLLOUT_COMPLETED: ROLLOUT_COMPLETED}.get(
        instance.kind, ROLLOUT_ENDED)
    model_aliases_follow_rollout(model=rollout.deployment.registered_model, rollout_id=rollout.pk, moment=moment,
                                 champion=rollout.champion, challenger=rollout.challenger, user=instance.actor)
    if instance.kind in ENDED:
        deployment_id = instance.deployment_id

        def next_candidate():
            from .services import delivery_rollout_ended

            try:
                delivery_rollout_ended(deployment_id=deployment_id)
            except Exception:
                logger.exception("delivery: the next candidate of deployment %s was not started", deployment_id)

        transaction.on_commit(next_candidate)
