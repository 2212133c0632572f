"""Reads for the admin pages, the API and the dashboard: studies, trials, history, importances."""

import math

import numpy as np
from django.db.models import Count, Q, QuerySet

from .choices import TRIAL_TERMINAL, Direction, TrialStatus
from .models import Trial, TuningEvent, TuningStudy
from .space import SearchSpace

MIN_TRIALS_FOR_IMPORTANCE = 3


def study_list(*, status: str | None = None) -> QuerySet[TuningStudy]:
    """Studies with their trial counts (`n_trials`, `n_finished`, `n_running`), newest first."""
    studies = (
        TuningStudy.objects.select_related("experiment", "model_version__registered_model")
        .annotate(
            n_trials=Count("trials"),
            n_finished=Count("trials", filter=Q(trials__status__in=list(TRIAL_TERMINAL))),
            n_running=Count("trials", filter=Q(trials__status=TrialStatus.RUNNING)),
        )
        .order_by("-created_at", "-id")
    )
    if status:
        studies = studies.filter(status=status)
    return studies


def study_get(*, study_id: int) -> TuningStudy | None:
    return study_list().filter(pk=study_id).first()


def study_trials(*, study: TuningStudy) -> QuerySet[Trial]:
    return study.trials.select_related("run").order_by("number")


def study_events(*, study: TuningStudy, limit: int = 200) -> list[TuningEvent]:
    events = TuningEvent.objects.filter(study=study).select_related("trial", "actor").order_by("-created_at", "-id")
    return list(events[:limit])[::-1]


def study_best_trial(*, study: TuningStudy) -> Trial | None:
    """The completed trial with the best value (the lowest number among equals)."""
    trials = study.trials.filter(status=TrialStatus.COMPLETED, value__isnull=False)
    order = "-value" if study.direction == Direction.MAXIMIZE else "value"
    return trials.order_by(order, "number").select_related("run").first()


def study_history(*, study: TuningStudy) -> list[dict]:
    """The optimisation history: every trial in order with its value and the best value so far."""
    maximize = study.direction == Direction.MAXIMIZE
    best = None
    history = []
    for trial in study.trials.order_by("number"):
        if trial.status == TrialStatus.COMPLETED and trial.value is not None:
            if best is None or (trial.value > best if maximize else trial.value < best):
                best = trial.value
        series = trial.intermediate_series()
        history.append(
            {
                "number": trial.number,
                "status": trial.status,
                "value": trial.value,
                "best_value": best,
                "last_intermediate": series[max(series)] if series else None,
                "params": trial.params,
                "started_at": trial.started_at,
                "finished_at": trial.finished_at,
            }
        )
    return history


def _encode(space: SearchSpace, trials: list[Trial]) -> np.ndarray:
    """Parameters as numbers: log-scale ones as log10, categoricals as their choice index."""
    columns = []
    for parameter in space.parameters:
        if parameter.kind == "categorical":
            index = {repr(c): i for i, c in enumerate(parameter.choices)}
            columns.append([index.get(repr(t.params.get(parameter.name)), -1) for t in trials])
        else:
            values = [float(t.params.get(parameter.name, math.nan)) for t in trials]
            columns.append([math.log10(v) if parameter.log and v > 0 else v for v in values])
    return np.asarray(columns, dtype=float).T


def study_param_importances(*, study: TuningStudy) -> dict:
    """fANOVA-lite: a random forest learns value ~ parameters over the completed trials; its
    impurity importances, normalised to sum 1, say which parameters moved the objective."""
    from sklearn.ensemble import RandomForestRegressor

    space = SearchSpace.from_spec(study.search_space)
    trials = list(study.trials.filter(status=TrialStatus.COMPLETED, value__isnull=False).order_by("number"))
    result = {"method": "random_forest", "n_trials": len(trials), "importances": []}
    if len(trials) < MIN_TRIALS_FOR_IMPORTANCE:
        result["note"] = f"needs at least {MIN_TRIALS_FOR_IMPORTANCE} completed trials"
        return result
    X = _encode(space, trials)
    y = np.asarray([t.value for t in trials], dtype=float)
    if np.ptp(y) == 0:
        result["note"] = "every completed trial scored the same"
        scores = np.zeros(len(space.names))
    else:
        forest = RandomForestRegressor(n_estimators=64, random_state=0, min_samples_leaf=1)
        forest.fit(np.nan_to_num(X), y)
        scores = forest.feature_importances_
    result["importances"] = sorted(
        ({"param": name, "importance": float(score)} for name, score in zip(space.names, scores)),
        key=lambda item: -item["importance"],
    )
    return result


def study_parallel_coordinates(*, study: TuningStudy) -> dict:
    """Axes (each parameter, then the objective) and one line per completed trial."""
    space = SearchSpace.from_spec(study.search_space)
    trials = list(study.trials.filter(status=TrialStatus.COMPLETED, value__isnull=False).order_by("number"))
    dimensions = []
    for parameter in space.parameters:
        axis = {"name": parameter.name, "type": parameter.kind}
        if parameter.kind == "categorical":
            axis["choices"] = list(parameter.choices)
        else:
            axis.update(low=parameter.low, high=parameter.high, log=parameter.log)
        dimensions.append(axis)
    values = [t.value for t in trials]
    dimensions.append(
        {
            "name": study.objective_metric,
            "type": "objective",
            "direction": study.direction,
            "low": min(values) if values else None,
            "high": max(values) if values else None,
            "log": False,
        }
    )
    return {
        "dimensions": dimensions,
        "trials": [{"number": t.number, "params": t.params, "value": t.value} for t in trials],
    }
