"""Delivery listens to the registry and the deployments instead of being called by them.

- A new ModelVersion: evaluations for the policies it feeds (after the registration commits, in their
  own transaction, so a delivery problem can never undo a registration).
- A rollout DeploymentEvent: the registry's aliases follow it in the same transaction (so the alias
  and the rollout cannot disagree), and when the rollout ended the next waiting candidate goes.
- A firing accuracy or drift AlertEvent: a retrain, in the alert's transaction (the note it leaves on
  the event is in the webhook payload and on the dashboard).
"""

import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from apps.alerts.choices import RETRAIN_KINDS, AlertEventKind
from apps.alerts.models import AlertEvent
from apps.deployments.choices import EventKind
from apps.deployments.models import DeploymentEvent
from apps.registry.models import ModelVersion

from .models import DeliveryPolicy

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
            candidate_evaluations_request(
                version=ModelVersion.objects.select_related("registered_model").get(pk=version_id)
            )
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
        instance.kind, ROLLOUT_ENDED
    )
    model_aliases_follow_rollout(
        model=rollout.deployment.registered_model,
        rollout_id=rollout.pk,
        moment=moment,
        champion=rollout.champion,
        challenger=rollout.challenger,
        user=instance.actor,
    )
    if instance.kind in ENDED:
        deployment_id = instance.deployment_id

        def next_candidate():
            from .services import delivery_rollout_ended

            try:
                delivery_rollout_ended(deployment_id=deployment_id)
            except Exception:
                logger.exception("delivery: the next candidate of deployment %s was not started", deployment_id)

        transaction.on_commit(next_candidate)


@receiver(post_save, sender=AlertEvent, dispatch_uid="delivery.retrain_on_alert")
def retrain_on_alert(sender, instance, created, **kwargs):
    """Issue 13's trigger: a firing accuracy or drift alert on a deployment whose delivery policy
    challenges new versions automatically retrains the experiment behind its champion, through the
    schedule service (so unchanged data and settings skip it, saying why). The new version then takes
    the policy's usual path: evaluation, rollout as challenger, gates."""
    if (
        kwargs.get("raw")
        or not created
        or instance.kind != AlertEventKind.FIRING
        or (instance.rule.kind not in RETRAIN_KINDS)
    ):  # raw: loaddata restores an event, it does not fire one
        return
    from apps.deployments.selectors import deployment_primary_version
    from apps.training.services.schedules import experiment_retrain_scheduled

    rule, event = instance.rule, instance
    policy = DeliveryPolicy.objects.filter(deployment_id=rule.deployment_id, auto_challenge=True).first()
    if policy is None:
        return
    champion = deployment_primary_version(deployment=rule.deployment)
    run = getattr(champion, "training_run", None) if champion is not None else None
    if run is None:
        event.retrain_note = "no retrain: the deployment serves no champion trained by an experiment"
    else:
        try:
            started = experiment_retrain_scheduled(experiment_id=run.experiment_id, tick=f"alert-event-{event.pk}")
        except ValidationError as exc:
            started, event.retrain_note = None, f"no retrain: {exc}"
        if started is not None:
            event.retrain_run = started
            event.retrain_note = (
                f"alert {rule.name}: retrain run {started.pk} of experiment {run.experiment.name} queued"
            )
        elif not event.retrain_note:
            event.retrain_note = (
                f"no retrain of {run.experiment.name}: a scheduled run is still active, or its data "
                "and settings are unchanged since the last succeeded run"
            )
    event.save(update_fields=["retrain_run", "retrain_note"])
