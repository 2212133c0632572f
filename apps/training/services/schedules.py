"""Retraining schedules: TrainingSchedule rows kept in step with django-celery-beat PeriodicTasks,
and the two retraining triggers (a beat tick, a new dataset version)."""

import json
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.training.choices import RUN_ACTIVE, IntervalUnit, RunOrigin, RunStatus, ScheduleKind
from apps.training.models import Experiment, TrainingRun, TrainingSchedule
from apps.training.services.experiments import experiment_training_config, validate_training_config

logger = logging.getLogger(__name__)

RETRAIN_TASK = "training.retrain_experiment"
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def parse_cron(expression: str) -> dict:
    """'m h dom mon dow' -> crontab kwargs; ValidationError naming the bad field."""
    from celery.schedules import crontab

    parts = (expression or "").split()
    if len(parts) != 5:
        raise ValidationError(
            {"cron": f"needs 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}."}
        )
    fields = dict(zip(CRON_FIELDS, parts))
    for name, value in fields.items():
        try:
            crontab(**{name: value})
        except (ValueError, TypeError) as exc:
            raise ValidationError({"cron": f"{name.replace('_', '-')} {value!r} is not valid: {exc}"}) from exc
    return fields


def _config(schedule: TrainingSchedule) -> dict:
    return experiment_training_config(
        experiment=schedule.experiment,
        framework=schedule.framework or None,
        model_type=schedule.model_type or None,
        params=schedule.params or None,
        device=schedule.device or None,
    )


def training_schedule_validate(schedule: TrainingSchedule) -> None:
    if schedule.kind == ScheduleKind.CRON:
        parse_cron(schedule.cron)
    elif schedule.kind == ScheduleKind.INTERVAL:
        if not schedule.every or schedule.every < 1:
            raise ValidationError({"every": "an interval schedule needs a positive number."})
        if schedule.unit not in IntervalUnit.values:
            raise ValidationError({"unit": f"must be one of {IntervalUnit.values}."})
    else:
        raise ValidationError({"kind": f"must be one of {ScheduleKind.values}."})
    config = _config(schedule)
    validate_training_config(**config)


def _sync_periodic_task(schedule: TrainingSchedule) -> None:
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    crontab = interval = None
    if schedule.kind == ScheduleKind.CRON:
        crontab, _ = CrontabSchedule.objects.get_or_create(**parse_cron(schedule.cron), timezone="UTC")
    else:
        interval, _ = IntervalSchedule.objects.get_or_create(every=schedule.every, period=schedule.unit)
    values = {
        "name": f"training schedule {schedule.pk}: {schedule.name}"[:200],
        "task": RETRAIN_TASK,
        "kwargs": json.dumps({"experiment_id": schedule.experiment_id, "schedule_id": schedule.pk}),
        "queue": settings.HOUSEKEEPING_QUEUE,
        "crontab": crontab,
        "interval": interval,
        "enabled": schedule.enabled,
        "description": f"Retrain experiment {schedule.experiment.name} on its dataset's newest version.",
    }
    task = schedule.periodic_task
    if task is None:
        task = PeriodicTask.objects.create(**values)
        schedule.periodic_task = task
        schedule.save(update_fields=["periodic_task", "updated_at"])
    else:
        for name, value in values.items():
            setattr(task, name, value)
        task.save()


@transaction.atomic
def training_schedule_save(*, schedule: TrainingSchedule, user=None) -> TrainingSchedule:
    """Validates and saves a schedule (new or changed) and its beat PeriodicTask."""
    training_schedule_validate(schedule)
    if schedule.pk is None and user is not None:
        schedule.created_by = user
    schedule.full_clean(exclude=["periodic_task"])
    schedule.save()
    _sync_periodic_task(schedule)
    return schedule


@transaction.atomic
def training_schedule_delete(*, schedule: TrainingSchedule) -> None:
    task = schedule.periodic_task
    schedule.delete()
    if task is not None:
        task.delete()


TICK_STARTED, TICK_SKIPPED = "started", "skipped"


def _record_tick(schedule: TrainingSchedule | None, *, outcome: str, reason: str, run: TrainingRun | None) -> None:
    """Stamps what this tick did on the schedule (an update, so a concurrent admin edit is not undone)."""
    if schedule is None:
        return
    changes = {
        "last_tick_at": timezone.now(),
        "last_tick_outcome": outcome,
        "last_tick_reason": reason,
        "last_tick_run": run,
    }
    if outcome == TICK_STARTED:
        changes["force_next"] = False
    TrainingSchedule.objects.filter(pk=schedule.pk).update(**changes)


def _unchanged_since_last_success(*, experiment: Experiment, config: dict) -> TrainingRun | None:
    """The newest succeeded run of `experiment` that trained on the dataset's newest version with
    exactly these settings (framework, model type, params with defaults, device, feature spec, seed):
    retraining would only repeat it. None when anything differs."""
    from apps.datasets.selectors import dataset_version_latest

    latest = dataset_version_latest(dataset=experiment.dataset)
    if latest is None:
        return None
    last = experiment.runs.filter(status=RunStatus.SUCCEEDED).order_by("-finished_at", "-pk").first()
    if last is None:
        return None
    params = validate_training_config(**config)
    spec = experiment.feature_spec.spec if experiment.feature_spec_id else {}
    same = (
        last.dataset_version_id == latest.pk
        and last.framework == config["framework"]
        and last.model_type == config["model_type"]
        and last.params == params
        and last.device == config["device"]
        and last.feature_spec == spec
        and last.seed == experiment.seed
    )
    return last if same else None


@transaction.atomic
def experiment_retrain_scheduled(
    *, experiment_id: int, schedule_id: int | None = None, tick: str | None = None, force: bool = False
) -> TrainingRun | None:
    """One beat tick: starts a run on the dataset's newest version, unless a scheduled run of the
    experiment is still queued or running, or the newest dataset version and the training settings
    are the same as the last succeeded run's (a retrain would only repeat it) — unless `force` or
    the schedule's `force_next` asks for it. Every tick records its outcome and why on the schedule.
    The experiment row lock makes concurrent ticks take turns, and the tick's message id is the
    idempotency key, so a redelivered tick starts nothing."""
    from apps.training.services.training_pipeline import training_run_start

    experiment = Experiment.objects.select_for_update().filter(pk=experiment_id).first()
    if experiment is None:
        logger.warning("scheduled retrain: experiment %s no longer exists", experiment_id)
        return None
    schedule = None
    if schedule_id is not None:
        schedule = TrainingSchedule.objects.filter(pk=schedule_id, experiment=experiment).first()
        if schedule is None or not schedule.enabled:
            logger.info("scheduled retrain: schedule %s is gone or disabled", schedule_id)
            return None
    key = f"schedule:{schedule_id or 0}:{tick}" if tick else None
    if key and TrainingRun.objects.filter(idempotency_key=key).exists():
        return TrainingRun.objects.get(idempotency_key=key)
    active = experiment.runs.filter(status__in=RUN_ACTIVE, origin=RunOrigin.SCHEDULE).order_by("pk").first()
    if active is not None:
        logger.info("scheduled retrain of %s skipped: run %s is still %s", experiment.name, active.pk, active.status)
        _record_tick(
            schedule,
            outcome=TICK_SKIPPED,
            run=active,
            reason=f"run {active.pk} of this experiment is still {active.status}",
        )
        return None
    if schedule is not None:
        config = _config(schedule)
        user = schedule.created_by
        force = force or schedule.force_next
    else:
        config = experiment_training_config(experiment=experiment)
        user = None
    if not force:
        same = _unchanged_since_last_success(experiment=experiment, config=config)
        if same is not None:
            reason = (
                f"dataset version {same.dataset_version.version} and the training settings are unchanged "
                f"since run {same.pk} succeeded; force to retrain anyway"
            )
            logger.info("scheduled retrain of %s skipped: %s", experiment.name, reason)
            _record_tick(schedule, outcome=TICK_SKIPPED, reason=reason, run=same)
            return None
    run = training_run_start(experiment=experiment, user=user, origin=RunOrigin.SCHEDULE, idempotency_key=key, **config)
    _record_tick(
        schedule,
        outcome=TICK_STARTED,
        run=run,
        reason="forced" if force else "new data or changed settings since the last succeeded run",
    )
    return run


def experiments_retrain_on_new_version(*, version) -> list[TrainingRun]:
    """Receiver body for dataset_version_created: experiments flagged retrain_on_new_data train on it."""
    from apps.training.services.training_pipeline import training_run_start

    runs = []
    for experiment in Experiment.objects.filter(dataset_id=version.dataset_id, retrain_on_new_data=True):
        try:
            runs.append(
                training_run_start(
                    experiment=experiment,
                    framework=experiment.default_framework,
                    model_type=experiment.default_model_type,
                    params=experiment.default_params,
                    device=experiment.default_device,
                    origin=RunOrigin.DATASET,
                    dataset_version=version,
                    idempotency_key=f"dataset-version:{version.pk}:experiment:{experiment.pk}",
                )
            )
        except ValidationError as exc:
            logger.error("retrain of %s on %s not started: %s", experiment.name, version, exc)
    return runs
