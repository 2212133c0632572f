"""Continuous delivery: a new version is evaluated offline, then rolled out as challenger.

    new ModelVersion ──(policy with auto_challenge)──► CandidateEvaluation queued ──worker──► running
        running ──score──► failed (champion untouched, reason stored)
                         ► rejected (did not clear the margin over the champion)
                         ► passed ──► rollout started as challenger      (no open rollout)
                                  ──► waiting, older waiting superseded   (open rollout, policy "queue")
                                  ──► the open rollout aborted, this one started (policy "replace" and
                                      the open rollout is this policy's and has not passed a stage)
    open rollout ends ──► the newest waiting candidate starts (or is evaluated again when the
                          champion changed while it waited)

Decisions lock the policy row (`select_for_update`), so two candidates that finish together take
turns and start one rollout between them. Rollouts go through the deployments' rollout service, the
only writer of a rollout's status; the gates then promote or roll back as for any rollout.
"""

from __future__ import annotations

import logging
import math
import traceback

from celery import current_app
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .choices import EvaluationAction, EvaluationStatus, WhenRolloutOpen
from .evaluation import EvaluationError, score_candidate
from .models import CandidateEvaluation, DeliveryPolicy

logger = logging.getLogger(__name__)

ACTOR = "delivery policy"


def _champion_of(deployment):
    """The champion now: the open rollout's (it may hold no traffic at a 100% stage), else the
    serving champion with the most traffic; None when nothing serves."""
    from apps.deployments.choices import VersionRole
    from apps.deployments.models import DeploymentVersion
    from apps.deployments.selectors import deployment_open_rollout

    open_rollout = deployment_open_rollout(deployment=deployment)
    if open_rollout is not None:
        return open_rollout.champion

    row = (
        DeploymentVersion.objects.filter(deployment=deployment, shadow=False, weight__gt=0, role=VersionRole.CHAMPION)
        .select_related("model_version__registered_model")
        .order_by("-weight")
        .first()
    )
    return row.model_version if row else None


def default_metric(task: str) -> str:
    from apps.frameworks.metrics import DEFAULT_METRIC

    return DEFAULT_METRIC.get(task, "accuracy")


def delivery_policy_validate(policy: DeliveryPolicy) -> None:
    """Checks a policy against its deployment (and normalises stages and gates); ValidationError
    naming the field."""
    from apps.deployments.services.rollouts import validate_gates, validate_stages

    from .evaluation import scored_metrics

    deployment = policy.deployment
    if policy.registered_model_id is None:
        policy.registered_model_id = deployment.registered_model_id
    if policy.registered_model_id != deployment.registered_model_id:
        raise ValidationError(
            {
                "registered_model": f"deployment {deployment.name} serves "
                f"{deployment.registered_model.name}; a policy can only feed it that model"
            }
        )
    champion = _champion_of(deployment)
    if policy.metric and champion is not None:
        known = scored_metrics(champion.task)
        if policy.metric not in known:
            raise ValidationError({"metric": f"{policy.metric!r} is not a {champion.task} metric; one of {known}"})
    if not math.isfinite(policy.min_improvement):
        raise ValidationError({"min_improvement": "a finite number"})
    if policy.when_rollout_open not in WhenRolloutOpen.values:
        raise ValidationError({"when_rollout_open": f"must be one of {WhenRolloutOpen.values}"})
    if policy.stages is not None:
        policy.stages = validate_stages(policy.stages)
    if policy.gates is not None:
        policy.gates = validate_gates(policy.gates)


@transaction.atomic
def delivery_policy_save(*, policy: DeliveryPolicy, user=None) -> DeliveryPolicy:
    """Validates and saves a policy. Raises ValidationError naming the field."""
    delivery_policy_validate(policy)
    if user is not None and getattr(user, "is_authenticated", False):
        policy.updated_by = user
    policy.full_clean(exclude=["deployment", "registered_model", "updated_by"])
    policy.save()
    return policy


def _note(evaluation: CandidateEvaluation, message: str, level: str = "INFO") -> None:
    evaluation.log = [*evaluation.log, {"ts": timezone.now().isoformat(), "level": level, "message": message}]


def _dispatch(evaluation_id: int) -> None:
    """Sends the evaluation to the worker under a fresh task id, recorded first so the reaper can
    look for this message on the broker; when the broker cannot take it the evaluation ends FAILED
    saying so, rather than waiting QUEUED for a message that does not exist.

    A fresh id per message keeps a late copy of an older one harmless: whichever message claims the
    QUEUED evaluation first runs it, and every other copy finds it started (see _claim)."""
    import uuid

    from django.db.models import F

    from apps.training import conf

    queue = conf.get("TRAINING_CPU_QUEUE")
    task_id = str(uuid.uuid4())
    sent = CandidateEvaluation.objects.filter(pk=evaluation_id, status=EvaluationStatus.QUEUED).update(
        celery_task_id=task_id, dispatched_at=timezone.now(), dispatches=F("dispatches") + 1
    )
    if not sent:
        return  # started or finished meanwhile: nothing to send
    try:
        # By task name: apps.delivery.tasks imports these services, so they never import it back.
        current_app.send_task(
            "delivery.evaluate_candidate",
            args=[evaluation_id],
            queue=queue,
            routing_key=queue,
            task_id=task_id,
            ignore_result=True,
        )
    except Exception as exc:
        logger.exception("evaluation %s could not be queued", evaluation_id)
        evaluation = CandidateEvaluation.objects.filter(pk=evaluation_id, status=EvaluationStatus.QUEUED).first()
        if evaluation is not None:
            _finish(evaluation, EvaluationStatus.FAILED, f"the broker did not take the task: {exc}")


def candidate_evaluation_create(*, policy: DeliveryPolicy, candidate, trigger: str) -> CandidateEvaluation:
    """Queues an evaluation of `candidate` for `policy` (sent to the worker on commit)."""
    evaluation = CandidateEvaluation(policy=policy, candidate=candidate, trigger=trigger[:200])
    _note(evaluation, f"queued: {trigger}")
    evaluation.save()
    transaction.on_commit(lambda: _dispatch(evaluation.pk))
    return evaluation


@transaction.atomic
def candidate_evaluations_request(*, version, trigger: str = "") -> list[CandidateEvaluation]:
    """A new version of a model: one evaluation per policy with auto_challenge that it feeds."""
    out = []
    policies = DeliveryPolicy.objects.filter(registered_model_id=version.registered_model_id, auto_challenge=True)
    for policy in policies.select_related("deployment"):
        if CandidateEvaluation.objects.filter(policy=policy, candidate=version).exists():
            continue  # the same version announced twice
        run = version.training_run_id
        out.append(
            candidate_evaluation_create(
                policy=policy, candidate=version, trigger=trigger or f"{version} registered from run {run}"
            )
        )
    return out


def _finish(evaluation: CandidateEvaluation, status: str, reason: str) -> None:
    evaluation.status, evaluation.reason, evaluation.finished_at = status, reason, timezone.now()
    _note(evaluation, f"{status}: {reason}", "ERROR" if status == EvaluationStatus.FAILED else "INFO")
    evaluation.save()


def _claim(evaluation_id: int, celery_task_id: str) -> CandidateEvaluation | None:
    from apps.datasets.selectors import dataset_version_latest

    with transaction.atomic():
        evaluation = (
            CandidateEvaluation.objects.select_for_update()
            .select_related("policy__deployment", "candidate__dataset_version__dataset")
            .filter(pk=evaluation_id)
            .first()
        )
        if evaluation is None:
            return None
        # The same message handed back after its worker died runs again; any other copy of a
        # started or finished evaluation is a duplicate.
        redelivered = (
            evaluation.status == EvaluationStatus.RUNNING
            and celery_task_id
            and evaluation.celery_task_id == celery_task_id
        )
        if evaluation.status != EvaluationStatus.QUEUED and not redelivered:
            return None
        policy = evaluation.policy
        evaluation.status, evaluation.started_at, evaluation.celery_task_id = (
            EvaluationStatus.RUNNING,
            timezone.now(),
            celery_task_id,
        )
        evaluation.champion = _champion_of(policy.deployment)
        evaluation.dataset_version = dataset_version_latest(dataset=evaluation.candidate.dataset_version.dataset)
        evaluation.metric = policy.metric or default_metric(evaluation.candidate.task)
        evaluation.min_improvement = policy.min_improvement
        _note(
            evaluation,
            f"running: {evaluation.candidate} against champion {evaluation.champion or '-'} "
            f"on {evaluation.dataset_version}, metric {evaluation.metric}",
        )
        evaluation.save()
        return evaluation


def candidate_evaluation_execute(*, evaluation_id: int, celery_task_id: str = "") -> CandidateEvaluation | None:
    """The worker's half: score, store both metrics, decide, and act on a pass. Any error ends the
    evaluation FAILED with the reason; nothing reaches the deployment then."""
    evaluation = _claim(evaluation_id, celery_task_id)
    if evaluation is None:
        return None
    candidate, champion = evaluation.candidate, evaluation.champion
    if champion is None:
        _finish(
            evaluation, EvaluationStatus.FAILED, f"deployment {evaluation.policy.deployment.name} serves no champion"
        )
        return evaluation
    if champion.pk == candidate.pk:
        _finish(evaluation, EvaluationStatus.REJECTED, f"{candidate} already serves as champion")
        return evaluation
    try:
        scores = score_candidate(
            candidate=candidate,
            champion=champion,
            dataset_version=evaluation.dataset_version,
            metric=evaluation.metric,
            min_rows=evaluation.policy.min_evaluation_rows,
        )
    except EvaluationError as exc:
        _finish(evaluation, EvaluationStatus.FAILED, str(exc))
        return evaluation
    except Exception as exc:  # a model that cannot load or predict must not take the policy down
        logger.exception("evaluation %s failed", evaluation.pk)
        _note(evaluation, traceback.format_exc(limit=5), "ERROR")
        _finish(evaluation, EvaluationStatus.FAILED, f"{type(exc).__name__}: {exc}")
        return evaluation
    for line in scores.log:
        _note(evaluation, line)
    evaluation.candidate_value, evaluation.champion_value = scores.candidate_value, scores.champion_value
    evaluation.candidate_metrics, evaluation.champion_metrics = scores.candidate_metrics, scores.champion_metrics
    evaluation.window = scores.window
    improvement = evaluation.improvement
    verdict = (
        f"{evaluation.metric} {scores.candidate_value:.4f} vs champion {scores.champion_value:.4f} on "
        f"{scores.window['rows']} rows after {scores.window['after']}: improvement {improvement:+.4f}, "
        f"required {evaluation.min_improvement:+.4f}"
    )
    with transaction.atomic():
        policy = DeliveryPolicy.objects.select_for_update().select_related("deployment").get(pk=evaluation.policy_id)
        evaluation.policy = policy
        if improvement < evaluation.min_improvement:
            _finish(evaluation, EvaluationStatus.REJECTED, verdict)
            return evaluation
        _finish(evaluation, EvaluationStatus.PASSED, verdict)
        _deliver(evaluation)
    return evaluation


def _start_rollout(evaluation: CandidateEvaluation, *, why: str) -> None:
    """Starts the candidate as challenger through the rollout service, or evaluates it again when the
    champion is no longer the one it beat (caller holds the policy lock)."""
    from apps.deployments.services.rollouts import rollout_create

    policy = evaluation.policy
    champion = _champion_of(policy.deployment)
    if champion is None or champion.pk != evaluation.champion_id:
        evaluation.action = EvaluationAction.REEVALUATED
        _note(evaluation, f"champion is now {champion or '-'}, not {evaluation.champion}: evaluated again")
        evaluation.save(update_fields=["action", "log"])
        if champion is not None and champion.pk != evaluation.candidate_id:
            candidate_evaluation_create(
                policy=policy,
                candidate=evaluation.candidate,
                trigger=f"champion changed to {champion} while evaluation {evaluation.pk} waited",
            )
        return
    reason = (
        f"{ACTOR}: {evaluation.candidate} cleared the margin in evaluation {evaluation.pk} "
        f"({evaluation.metric} {evaluation.candidate_value:.4f} vs {evaluation.champion_value:.4f}); {why}"
    )
    rollout = rollout_create(
        deployment=policy.deployment,
        challenger=evaluation.candidate,
        stages=policy.stages,
        gates=policy.gates,
        reason=reason,
        actor_label=ACTOR,
        start=True,
    )
    evaluation.action, evaluation.rollout = EvaluationAction.ROLLOUT_STARTED, rollout
    _note(evaluation, f"rollout {rollout.pk} started at {rollout.current_percent:g}%")
    evaluation.save(update_fields=["action", "rollout", "log"])


def _deliver(evaluation: CandidateEvaluation) -> None:
    from apps.deployments.choices import RolloutAction
    from apps.deployments.selectors import deployment_open_rollout
    from apps.deployments.services.rollouts import rollout_transition

    policy = evaluation.policy
    open_rollout = deployment_open_rollout(deployment=policy.deployment)
    if open_rollout is None:
        _start_rollout(evaluation, why="no rollout was open")
        return
    ours = CandidateEvaluation.objects.filter(policy=policy, rollout=open_rollout).first()
    if policy.when_rollout_open == WhenRolloutOpen.REPLACE and ours is not None and open_rollout.stage_index == 0:
        rollout_transition(
            rollout=open_rollout,
            action=RolloutAction.ABORT,
            actor_label=ACTOR,
            reason=f"{ACTOR}: replaced by {evaluation.candidate} (evaluation {evaluation.pk}) before "
            f"{open_rollout.challenger} passed a stage",
        )
        ours.action = EvaluationAction.SUPERSEDED
        _note(ours, f"rollout {open_rollout.pk} aborted: replaced by {evaluation.candidate}")
        ours.save(update_fields=["action", "log"])
        _start_rollout(evaluation, why=f"replaced rollout {open_rollout.pk}")
        return
    for older in CandidateEvaluation.objects.filter(policy=policy, action=EvaluationAction.WAITING).exclude(
        pk=evaluation.pk
    ):
        older.action = EvaluationAction.SUPERSEDED
        _note(older, f"superseded by {evaluation.candidate} (evaluation {evaluation.pk}) while waiting")
        older.save(update_fields=["action", "log"])
    evaluation.action = EvaluationAction.WAITING
    _note(evaluation, f"waiting: rollout {open_rollout.pk} ({open_rollout.status}) is open")
    evaluation.save(update_fields=["action", "log"])


@transaction.atomic
def delivery_rollout_ended(*, deployment_id: int) -> CandidateEvaluation | None:
    """A rollout of the deployment ended: the newest waiting candidate goes next."""
    from apps.deployments.selectors import deployment_open_rollout

    policy = (
        DeliveryPolicy.objects.select_for_update()
        .select_related("deployment")
        .filter(deployment_id=deployment_id, auto_challenge=True)
        .first()
    )
    if policy is None or deployment_open_rollout(deployment=policy.deployment) is not None:
        return None
    waiting = (
        CandidateEvaluation.objects.filter(policy=policy, action=EvaluationAction.WAITING)
        .select_related("candidate", "champion")
        .order_by("-candidate__version")
        .first()
    )
    if waiting is None:
        return None
    waiting.policy = policy
    _start_rollout(waiting, why="the previous rollout ended")
    return waiting
