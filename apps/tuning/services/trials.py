"""What happens to a trial while and after its TrainingRun trains.

Called from the training signals (in the worker) and from the study keeper (beat), which repairs
whatever a crash between a run's end and its signal left behind.
"""

import logging

from django.db import transaction

from ..choices import TRIAL_ACTIVE, TRIAL_TERMINAL, Direction, PrunerKind, StudyStatus, TrialStatus
from ..models import Trial, TuningStudy
from ..pruners import Curve, get_pruner
from .state import trial_status_change
from .studies import study_advance

logger = logging.getLogger(__name__)


def intermediate_key(study: TuningStudy) -> str:
    """The per-epoch metric that tracks the objective (`val_<metric>`, or `val_loss` for log loss)."""
    from apps.frameworks.fitting import resolve_monitor

    return resolve_monitor(study.experiment.task, study.objective_metric)


def _sign(study: TuningStudy) -> float:
    return 1.0 if study.direction == Direction.MINIMIZE else -1.0


def _curves(study: TuningStudy, sign: float) -> list[Curve]:
    state = {TrialStatus.COMPLETED: "complete", TrialStatus.PRUNED: "pruned"}
    rows = study.trials.values_list("number", "status", "intermediate_values")
    return [
        Curve(number, state.get(status, "pending"), {int(e): sign * float(v) for e, v in (values or {}).items()})
        for number, status, values in rows
    ]


def trial_record_epoch(*, run, epoch: int, metrics: dict) -> Trial | None:
    """Stores the trial's intermediate value for `epoch` and asks the pruner; an unpromising trial's
    run is asked to stop with reason "pruned", and the trial ends PRUNED when its run ends PRUNED.

    A prune only counts when the run takes it: a run that already ended (the pruner judged an
    earlier epoch after the run's final write) refuses it, and the trial keeps the result its run
    measured. So a trial is PRUNED exactly when its run is PRUNED, never beside a SUCCEEDED run."""
    from apps.training.choices import StopReason
    from apps.training.services.training_pipeline import RunStateError, training_run_request_stop

    with transaction.atomic():
        trial = (
            Trial.objects.select_for_update(of=("self",))
            .select_related("study__experiment")
            .filter(pk=run.trial_id)
            .first()
        )
        if trial is None or trial.status in TRIAL_TERMINAL or (trial.run_id and trial.run_id != run.pk):
            return trial
        if trial.status == TrialStatus.QUEUED:
            trial = trial_status_change(trial=trial, to=TrialStatus.RUNNING, reason=f"run {run.pk} training")
        study = trial.study
        key = intermediate_key(study)
        value = metrics.get(key)
        if value is None:
            return trial
        trial.intermediate_values = {**trial.intermediate_values, str(int(epoch)): float(value)}
        trial.save(update_fields=["intermediate_values", "updated_at"])
        if study.pruner == PrunerKind.NONE or trial.prune_requested_at_epoch is not None:
            return trial
        sign = _sign(study)
        curves = _curves(study, sign)
        mine = next(c for c in curves if c.number == trial.number)
        pruner = get_pruner(study.pruner, study.pruner_options)
        if not pruner.should_prune(trial=mine, others=curves, epoch=int(epoch)):
            return trial
        try:
            # Takes the run's row lock: either the run has not ended and will end PRUNED (run_finish
            # honours a request that lands after its last epoch), or it has ended and refuses.
            stopped = training_run_request_stop(run=run, reason=StopReason.PRUNED)
        except RunStateError:
            logger.info(
                "study %s trial #%s: prune at epoch %s came after run %s ended; the trial keeps its result",
                study.pk,
                trial.number,
                epoch,
                run.pk,
            )
            return trial
        if stopped.stop_requested != StopReason.PRUNED:
            return trial  # a cancel got there first: the run ends CANCELLED and so does the trial
        trial.prune_requested_at_epoch = int(epoch)
        trial.save(update_fields=["prune_requested_at_epoch", "updated_at"])
        logger.info("study %s trial #%s pruned at epoch %s (%s=%s)", study.pk, trial.number, epoch, key, value)
        return trial


def _outcome(trial: Trial, run) -> tuple[str, dict, str]:
    """(trial status, fields, reason) for a run in a terminal status: the trial's status follows
    its run's, so the two never disagree."""
    from apps.training.choices import RunStatus, StopReason

    study = trial.study
    if run.status == RunStatus.PRUNED or (run.status == RunStatus.CANCELLED and run.stop_reason == StopReason.PRUNED):
        # (CANCELLED with reason "pruned" is how runs ended before PRUNED existed.)
        at = trial.prune_requested_at_epoch
        return TrialStatus.PRUNED, {}, f"pruned at epoch {at}" if at is not None else "pruned"
    if run.status == RunStatus.SUCCEEDED:
        metrics = run.val_metrics or {}
        # Final metrics are keyed by bare name ("rmse"); accept the epoch-style "val_rmse" as well.
        value = metrics.get(study.objective_metric, metrics.get(f"val_{study.objective_metric}"))
        if value is None:
            message = f"run {run.pk} reported no validation {study.objective_metric}"
            return TrialStatus.FAILED, {"error": message}, message
        return TrialStatus.COMPLETED, {"value": float(value)}, f"{study.objective_metric}={float(value):.6g}"
    if run.status == RunStatus.CANCELLED:
        return TrialStatus.CANCELLED, {}, f"run {run.pk} cancelled"
    message = run.error_message or f"run {run.pk} failed"
    return TrialStatus.FAILED, {"error": message[:4000]}, f"run {run.pk} failed: {message[:300]}"


def trial_record_run_end(*, run_id: int) -> Trial | None:
    """Records how a trial's run ended, then tops the study up (under the study's row lock, so
    two workers finishing trials at once do not launch more than the budget allows)."""
    from apps.training.models import TrainingRun

    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None or not run.trial_id or not run.is_terminal:
        return None
    study_id = Trial.objects.filter(pk=run.trial_id).values_list("study_id", flat=True).first()
    if study_id is None:
        return None
    with transaction.atomic():
        # Whoever needs both locks takes the study's first, then the trial's.
        TuningStudy.objects.select_for_update().get(pk=study_id)
        trial = Trial.objects.select_for_update(of=("self",)).select_related("study__experiment").get(pk=run.trial_id)
        if trial.status in TRIAL_TERMINAL or (trial.run_id and trial.run_id != run.pk):
            return trial
        status, fields, reason = _outcome(trial, run)
        trial = trial_status_change(trial=trial, to=status, reason=reason, fields=fields)
        study_advance(study_id=study_id)
    return trial


def studies_keep() -> dict:
    """The beat keeper: settles trials whose run ended without being recorded, marks started ones
    RUNNING, and tops up every RUNNING study (launching missing trials, ending studies whose budget
    is spent). Relies on the database only, so it repairs any restart of web, worker or beat."""
    from django.db.models import Q

    from apps.training.choices import RUN_TERMINAL, RunStatus

    counts = {"recorded": 0, "launched": 0, "studies": 0}
    study_ids = list(
        TuningStudy.objects.filter(Q(status=StudyStatus.RUNNING) | Q(trials__status__in=TRIAL_ACTIVE))
        .values_list("pk", flat=True)
        .distinct()
    )
    for study_id in study_ids:
        counts["studies"] += 1
        try:
            active = Trial.objects.filter(study_id=study_id, status__in=TRIAL_ACTIVE).select_related("run")
            for trial in active:
                if trial.run is None:
                    continue
                if trial.run.status in RUN_TERMINAL:
                    trial_record_run_end(run_id=trial.run_id)
                    counts["recorded"] += 1
                elif trial.run.status == RunStatus.RUNNING and trial.status == TrialStatus.QUEUED:
                    with transaction.atomic():
                        locked = Trial.objects.select_for_update().get(pk=trial.pk)
                        if locked.status == TrialStatus.QUEUED:
                            trial_status_change(
                                trial=locked, to=TrialStatus.RUNNING, reason=f"run {trial.run_id} training"
                            )
            counts["launched"] += len(study_advance(study_id=study_id))
        except Exception:  # one broken study must not stop the keeper from tending the others
            logger.exception("study keeper failed on study %s", study_id)
    return counts
