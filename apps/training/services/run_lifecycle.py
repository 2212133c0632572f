"""A run's life seen from outside the worker: start (queued on commit), stop, retry, dispatch.

training_run_start creates the QUEUED row and, once the transaction commits, publishes its message
on the `cpu` or `gpu` queue; a broker that refuses the message ends the run FAILED at once.
"""

import logging
import uuid

from celery import current_app
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.core.limits import INT32_MAX
from apps.core import live
from apps.training import conf
from apps.training.choices import RUN_TERMINAL, Device, RunOrigin, RunStatus, StopReason, stopped_status
from apps.training.models import Experiment, RunEvent, TrainingRun
from apps.training.services.experiments import validate_training_config
from apps.training.services.runs import RunStateError, run_log_append, run_status_transition, status_message

logger = logging.getLogger(__name__)


def queue_for_device(device: str) -> str:
    return conf.get("TRAINING_GPU_QUEUE") if device == Device.GPU else conf.get("TRAINING_CPU_QUEUE")


def dispatch_run(run_id: int, queue: str, task_id: str) -> None:
    """Publishes the run's task message (no status change: callers decide what a failure means).
    By task name: apps.training.tasks imports these services, so they never import it back."""
    current_app.send_task(
        "training.run", args=[run_id], queue=queue, routing_key=queue, task_id=task_id, ignore_result=True
    )


def dispatch_or_fail(run_id: int, queue: str, task_id: str) -> None:
    """Queues the run's message; if the broker cannot take it, the run ends FAILED saying so
    (rather than waiting QUEUED for a message that does not exist)."""
    try:
        dispatch_run(run_id, queue, task_id)
    except Exception as exc:
        logger.exception("could not queue training run %s", run_id)
        reason = f"could not queue the run on {queue!r}: {type(exc).__name__}: {exc}"
        try:
            run_status_transition(
                run_id=run_id, to=RunStatus.FAILED, reason=reason[:500], fields={"error_message": reason[:4000]}
            )
        except RunStateError:
            pass  # already picked up or ended meanwhile


@transaction.atomic
def training_run_start(
    *,
    experiment: Experiment,
    framework: str,
    model_type: str,
    params: dict | None,
    device: str = Device.CPU,
    user=None,
    seed: int | None = None,
    register_model: bool = True,
    trial=None,
    origin: str = RunOrigin.CODE,
    idempotency_key: str | None = None,
    dataset_version=None,
    retry_of: TrainingRun | None = None,
    dispatch: bool = True,
) -> TrainingRun:
    """Creates a QUEUED run and, once the transaction commits, queues it on `cpu` or `gpu`.

    Trains on `dataset_version` or else the dataset's newest version. With an `idempotency_key`
    already used, returns that run instead of starting another. `dispatch=False` leaves the run
    for an in-process training_run_execute (seed_demo). Raises ValidationError naming the field.
    """
    from apps.datasets.selectors import dataset_version_latest

    if idempotency_key:
        existing = TrainingRun.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    if origin not in RunOrigin.values:
        raise ValidationError({"origin": f"must be one of {RunOrigin.values}."})
    params = validate_training_config(framework=framework, model_type=model_type, params=params, device=device)
    if seed is None:
        seed = experiment.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not (0 <= seed <= INT32_MAX):
        raise ValidationError({"seed": f"must be a whole number between 0 and {INT32_MAX}."})
    if dataset_version is None:
        dataset_version = dataset_version_latest(dataset=experiment.dataset)
        if dataset_version is None:
            raise ValidationError({"experiment": f"dataset {experiment.dataset.name} has no version to train on yet."})
    elif dataset_version.dataset_id != experiment.dataset_id:
        raise ValidationError({"dataset_version": f"{dataset_version} is not a version of {experiment.dataset.name}."})

    queue = queue_for_device(device)
    task_id = str(uuid.uuid4())
    fields = dict(
        experiment=experiment,
        dataset_version=dataset_version,
        dataset_sha256=dataset_version.sha256,
        feature_spec=experiment.feature_spec.spec if experiment.feature_spec_id else {},
        framework=framework,
        model_type=model_type,
        params=params,
        device=device,
        queue=queue,
        seed=seed,
        origin=origin,
        register_model=register_model,
        trial_id=getattr(trial, "pk", trial),
        retry_of=retry_of,
        idempotency_key=idempotency_key or None,
        created_by=user,
        celery_task_id=task_id,
        max_attempts=conf.max_attempts(),
        status=RunStatus.QUEUED,
    )
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(**fields)
    except IntegrityError:
        if idempotency_key:  # the same key won a race a moment ago
            return TrainingRun.objects.get(idempotency_key=idempotency_key)
        raise
    who = f" by {user}" if user else ""
    RunEvent.objects.create(
        run=run, from_status="", to_status=RunStatus.QUEUED, reason=f"created ({origin}){who}", actor=user
    )
    message = status_message(run)

    def after_commit():
        live.publish(live.RUNS_GROUP, message)
        if dispatch:
            dispatch_or_fail(run.pk, queue, task_id)

    transaction.on_commit(after_commit)
    return run


@transaction.atomic
def training_run_request_stop(*, run: TrainingRun, reason: str = StopReason.CANCELLED, user=None) -> TrainingRun:
    """Cancels (or prunes) a run: a QUEUED run ends at once; a RUNNING one stops at its next batch
    or epoch boundary and then ends CANCELLED (PRUNED for reason "pruned") with stop_reason `reason`,
    even when the request lands after its last epoch (run_finish). An ended run: RunStateError."""
    if reason not in StopReason.values:
        raise ValidationError({"reason": f"must be one of {StopReason.values}."})
    locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
    who = f" by {user}" if user else ""
    if locked.status in RUN_TERMINAL:
        raise RunStateError({"status": f"run {locked.pk} already ended ({locked.status})."})
    if locked.status == RunStatus.QUEUED:
        return run_status_transition(
            run_id=locked.pk,
            to=stopped_status(reason),
            reason=f"{reason}{who} before it started",
            actor=user,
            fields={"stop_requested": reason, "stop_reason": reason},
        )
    if not locked.stop_requested:
        TrainingRun.objects.filter(pk=locked.pk).update(stop_requested=reason)
        locked.stop_requested = reason
        RunEvent.objects.create(
            run=locked,
            from_status=locked.status,
            to_status=locked.status,
            attempt=locked.attempts,
            reason=f"stop requested ({reason}){who}",
            actor=user,
        )
        run_log_append(
            run_id=locked.pk, level="WARNING", message=f"stop requested ({reason}){who}", attempt=locked.attempts
        )

        def tell_local_watcher():
            from apps.training.reporter import local_stop

            local_stop(locked.pk, reason)

        transaction.on_commit(tell_local_watcher)
    return locked


def training_run_retry(*, run: TrainingRun, user=None) -> TrainingRun:
    """A new run with the same experiment, data version, framework, params, device and seed."""
    run = TrainingRun.objects.select_related("experiment", "dataset_version").get(pk=run.pk)
    if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
        raise RunStateError({"status": f"only failed or cancelled runs can be retried; run {run.pk} is {run.status}."})
    return training_run_start(
        experiment=run.experiment,
        framework=run.framework,
        model_type=run.model_type,
        params=run.params,
        device=run.device,
        user=user,
        seed=run.seed,
        register_model=run.register_model,
        trial=run.trial_id,
        origin=RunOrigin.RETRY,
        dataset_version=run.dataset_version,
        retry_of=run,
    )
