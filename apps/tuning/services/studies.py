"""Study lifecycle: create, start, pause, resume, stop, and the top-up that launches trials.

Everything a study needs to continue lives in its rows: any process (web, worker, the beat keeper)
may call study_advance, and the row lock on the study makes concurrent callers launch each missing
trial once.
"""

import logging

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from ..choices import TRIAL_ACTIVE, Direction, StudyStatus, TrialStatus
from ..models import Trial, TuningEvent, TuningStudy
from ..selectors import study_best_trial
from ..strategies import TrialRecord, get_strategy
from ..space import SearchSpace
from .state import StudyStateError, study_status_change, trial_create, trial_status_change
from .validation import StudyConfig, validate_study_config

logger = logging.getLogger(__name__)

EDITABLE_FIELDS = (
    "framework",
    "model_type",
    "search_space",
    "fixed_params",
    "strategy",
    "strategy_options",
    "objective_metric",
    "direction",
    "max_trials",
    "max_wall_seconds",
    "parallelism",
    "pruner",
    "pruner_options",
    "device",
    "seed",
)


def study_config_resolve(
    *,
    experiment,
    framework=None,
    model_type=None,
    objective_metric=None,
    direction=None,
    strategy_options=None,
    pruner_options=None,
    max_trials=None,
    seed=None,
    **rest,
) -> StudyConfig:
    """The validated configuration of a new study; blanks (None or "") come from the experiment:
    framework, model type, metric and direction, seed; a grid's default budget is its size."""
    from apps.frameworks import FRAMEWORKS, get_adapter
    from apps.frameworks.metrics import greater_is_better

    framework = framework or experiment.default_framework
    if not model_type:
        if framework == experiment.default_framework:
            model_type = experiment.default_model_type
        elif framework in FRAMEWORKS:
            model_type = next(iter(get_adapter(framework).model_types))
    objective_metric = objective_metric or experiment.primary_metric
    if not direction:
        if objective_metric == experiment.primary_metric:
            direction = experiment.metric_direction
        else:
            try:
                direction = Direction.MAXIMIZE if greater_is_better(objective_metric) else Direction.MINIMIZE
            except ValueError:
                direction = ""
    if max_trials is None:
        # A grid's natural budget is the grid itself; other strategies get a modest default.
        max_trials = 20
        if rest.get("strategy") == "grid":
            try:
                max_trials = SearchSpace.from_spec(rest.get("search_space")).grid_size()
            except ValueError:
                pass
    return validate_study_config(
        experiment=experiment,
        framework=framework,
        model_type=model_type or "",
        objective_metric=objective_metric,
        direction=direction,
        strategy_options=strategy_options or {},
        pruner_options=pruner_options or {},
        max_trials=max_trials,
        seed=experiment.seed if seed is None else seed,
        **rest,
    )


@transaction.atomic
def study_create(
    *,
    name: str,
    experiment,
    search_space,
    strategy: str = "random",
    user=None,
    framework: str | None = None,
    model_type: str | None = None,
    fixed_params: dict | None = None,
    strategy_options: dict | None = None,
    objective_metric: str | None = None,
    direction: str | None = None,
    max_trials: int | None = None,
    max_wall_seconds: int | None = None,
    parallelism: int = 1,
    pruner: str = "none",
    pruner_options: dict | None = None,
    device: str = "cpu",
    seed: int | None = None,
    start: bool = False,
) -> TuningStudy:
    """Creates a DRAFT study (and starts it when `start`). Blank framework, model type, metric,
    direction and seed come from the experiment; a grid's default budget is its size.
    Raises ValidationError naming the field, e.g. {"search_space": "parameter 'alpha': ..."}."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "is required."})
    if TuningStudy.objects.filter(name=name).exists():
        raise ValidationError({"name": f"a study named {name!r} already exists."})
    config = study_config_resolve(
        experiment=experiment,
        framework=framework,
        model_type=model_type,
        search_space=search_space,
        fixed_params=fixed_params,
        strategy=strategy,
        strategy_options=strategy_options,
        objective_metric=objective_metric,
        direction=direction,
        max_trials=max_trials,
        max_wall_seconds=max_wall_seconds,
        parallelism=parallelism,
        pruner=pruner,
        pruner_options=pruner_options,
        device=device,
        seed=seed,
    )
    try:
        with transaction.atomic():
            study = TuningStudy.objects.create(name=name, experiment=experiment, created_by=user, **vars(config))
    except IntegrityError:  # the same name won a race a moment ago
        raise ValidationError({"name": f"a study named {name!r} already exists."}) from None
    TuningEvent.objects.create(
        study=study, from_status="", to_status=StudyStatus.DRAFT, reason=_by("created", user), actor=user
    )
    if start:
        study = study_start(study=study, user=user)
    return study


@transaction.atomic
def study_update(*, study: TuningStudy, data: dict) -> TuningStudy:
    """Changes a DRAFT study's configuration (a started study's trials must stay comparable)."""
    study = TuningStudy.objects.select_for_update().select_related("experiment").get(pk=study.pk)
    if study.status != StudyStatus.DRAFT:
        raise StudyStateError({"status": f"study {study.name!r} is {study.status}; only a draft can be edited."})
    current = {field: getattr(study, field) for field in EDITABLE_FIELDS}
    merged = {**current, **{k: v for k, v in data.items() if k in EDITABLE_FIELDS}}
    config = validate_study_config(experiment=study.experiment, **merged)
    for field, value in vars(config).items():
        setattr(study, field, value)
    study.save()
    return study


def _check_can_train(study: TuningStudy) -> None:
    from apps.datasets.selectors import dataset_version_latest

    if dataset_version_latest(dataset=study.experiment.dataset) is None:
        raise ValidationError(
            {"experiment": f"dataset {study.experiment.dataset.name} has no version to train on yet."}
        )


@transaction.atomic
def study_start(*, study: TuningStudy, user=None) -> TuningStudy:
    """DRAFT → RUNNING, and launches the first `parallelism` trials (queued when this commits)."""
    study = TuningStudy.objects.select_related("experiment__dataset").get(pk=study.pk)
    _check_can_train(study)
    study = study_status_change(study=study, to=StudyStatus.RUNNING, reason=_by("started", user), user=user)
    study_advance(study_id=study.pk)
    return TuningStudy.objects.get(pk=study.pk)


@transaction.atomic
def study_pause(*, study: TuningStudy, user=None) -> TuningStudy:
    """RUNNING → PAUSED: no new trials start; trials already running finish and are recorded."""
    return study_status_change(study=study, to=StudyStatus.PAUSED, reason=_by("paused", user), user=user)


@transaction.atomic
def study_resume(*, study: TuningStudy, user=None) -> TuningStudy:
    """PAUSED → RUNNING, topping the trials up to `parallelism` again."""
    study = study_status_change(study=study, to=StudyStatus.RUNNING, reason=_by("resumed", user), user=user)
    study_advance(study_id=study.pk)
    return TuningStudy.objects.get(pk=study.pk)


@transaction.atomic
def study_stop(*, study: TuningStudy, user=None) -> TuningStudy:
    """Ends the study now: active trials are cancelled and the best completed trial, if any, is
    registered like at a normal end."""
    from apps.training.services.training_pipeline import RunStateError, training_run_request_stop

    study = TuningStudy.objects.select_for_update().get(pk=study.pk)
    if study.status not in (StudyStatus.DRAFT, StudyStatus.RUNNING, StudyStatus.PAUSED):
        raise StudyStateError({"status": f"study {study.name!r} already ended ({study.status})."})
    for trial in study.trials.filter(status__in=TRIAL_ACTIVE).select_related("run"):
        if trial.run is None:
            trial_status_change(trial=trial, to=TrialStatus.CANCELLED, reason="study stopped", user=user)
            continue
        try:
            # The trial ends CANCELLED when its run does (run_finished), not before.
            training_run_request_stop(run=trial.run, reason="cancelled", user=user)
        except RunStateError:
            pass  # the run just ended; its run_finished records the trial
    return _finish(study, to=StudyStatus.STOPPED, reason=_by("stopped", user), user=user)


def _by(verb: str, user) -> str:
    return f"{verb} by {user}" if user else verb


def trial_records(study: TuningStudy, trials) -> list[TrialRecord]:
    """The study's trials as a strategy sees them: losses are minimised, whatever the direction."""
    sign = 1.0 if study.direction == Direction.MINIMIZE else -1.0
    records = []
    for trial in trials:
        if trial.status == TrialStatus.COMPLETED:
            records.append(TrialRecord(trial.params, "complete", sign * trial.value))
        elif trial.status == TrialStatus.PRUNED:
            series = trial.intermediate_series()
            records.append(TrialRecord(trial.params, "pruned", sign * series[max(series)] if series else None))
        elif trial.status == TrialStatus.FAILED:
            records.append(TrialRecord(trial.params, "failed"))
        elif trial.status == TrialStatus.CANCELLED:
            records.append(TrialRecord(trial.params, "cancelled"))
        else:
            records.append(TrialRecord(trial.params, "pending"))
    return records


@transaction.atomic
def study_advance(*, study_id: int) -> list[Trial]:
    """Tops a RUNNING study up to `parallelism` active trials within its budgets, or ends it when
    nothing is left to run. Safe to call from anywhere at any time; returns the trials launched."""
    study = TuningStudy.objects.select_for_update().select_related("experiment").get(pk=study_id)
    if study.status != StudyStatus.RUNNING:
        return []
    trials = list(study.trials.order_by("number"))
    active = [t for t in trials if t.status in TRIAL_ACTIVE]
    strategy = get_strategy(
        study.strategy, space=SearchSpace.from_spec(study.search_space), seed=study.seed, options=study.strategy_options
    )
    capacity = strategy.capacity()
    time_up = study.max_wall_seconds is not None and study.elapsed_seconds() >= study.max_wall_seconds
    slots = min(study.parallelism - len(active), study.max_trials - len(trials))
    if capacity is not None:
        slots = min(slots, capacity - len(trials))
    launched = []
    if slots > 0 and not time_up:
        next_number = trials[-1].number + 1 if trials else 1
        for params in strategy.suggest(trial_records(study, trials), slots):
            launched.append(_launch(study, number=next_number, params=params))
            next_number += 1
    if launched or active:
        return launched
    if time_up:
        reason = f"time budget of {study.max_wall_seconds} s used"
    elif len(trials) >= study.max_trials:
        reason = f"all {study.max_trials} trials done"
    else:
        reason = f"search space exhausted after {len(trials)} trials"
    _finish(study, to=StudyStatus.COMPLETED, reason=reason)
    return []


def _launch(study: TuningStudy, *, number: int, params: dict) -> Trial:
    """A new trial and its TrainingRun (queued on commit); a run that cannot start fails the trial."""
    from apps.training.choices import RunOrigin
    from apps.training.services.training_pipeline import training_run_start

    trial = trial_create(study=study, number=number, params=params, reason=f"suggested by {study.strategy}")
    try:
        with transaction.atomic():
            run = training_run_start(
                experiment=study.experiment,
                framework=study.framework,
                model_type=study.model_type,
                params={**study.fixed_params, **params},
                device=study.device,
                user=study.created_by,
                seed=study.seed,
                register_model=False,
                trial=trial,
                origin=RunOrigin.TUNING,
            )
    except ValidationError as exc:
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"run": exc.messages}
        message = "; ".join(f"{field}: {', '.join(messages)}" for field, messages in detail.items())
        return trial_status_change(
            trial=trial, to=TrialStatus.FAILED, reason=f"could not start: {message}", fields={"error": message}
        )
    Trial.objects.filter(pk=trial.pk).update(run=run)
    trial.run = run
    return trial


def _finish(study: TuningStudy, *, to: str, reason: str, user=None) -> TuningStudy:
    """Ends the study; registers its best trial's model, tagged with the study, when there is one.
    A study that ends by itself without any completed trial ends FAILED."""
    from apps.training.services.registration import model_version_create_from_run

    best = study_best_trial(study=study)
    fields = {}
    if best is None:
        if to == StudyStatus.COMPLETED:
            to = StudyStatus.FAILED
            reason = f"{reason}; no trial completed"
        return study_status_change(study=study, to=to, reason=reason, user=user)
    try:
        with transaction.atomic():
            version = model_version_create_from_run(
                run=best.run,
                name=study.experiment.model_name,
                user=user or study.created_by,
                tags={"tuning_study": study.name, "tuning_study_id": study.pk, "tuning_trial": best.number},
                description=f"Best trial (#{best.number}) of tuning study {study.name}: "
                f"{study.objective_metric}={best.value:.6g}, params {best.params}",
            )
        fields["model_version"] = version
        reason = (
            f"{reason}; best trial #{best.number} ({study.objective_metric}={best.value:.6g}) registered as "
            f"{version.registered_model.name} v{version.version}"
        )
    except ValidationError as exc:
        logger.error("study %s: best trial #%s could not be registered: %s", study.pk, best.number, exc)
        reason = f"{reason}; best trial #{best.number} could not be registered: {'; '.join(exc.messages)}"
    return study_status_change(study=study, to=to, reason=reason, user=user, fields=fields)
