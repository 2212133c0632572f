"""A tuning study over XGBoost parameters, its trials executed in-process as a worker would."""

import pytest

from apps.registry.loading import load_model_version
from apps.tuning.choices import StudyStatus, TrialStatus
from apps.tuning.services import study_create

from .conftest import execute_queued_trials

pytestmark = pytest.mark.usefixtures("parked_runs")

SPACE = [
    {"name": "learning_rate", "type": "float", "low": 0.05, "high": 0.5, "log": True},
    {"name": "max_depth", "type": "int", "low": 2, "high": 5},
]


def test_a_study_tunes_xgboost_params_and_registers_its_best_booster(
    regression_experiment, staff_user, django_capture_on_commit_callbacks, settings
):
    settings.TRAINING_WRITE_BEHIND = False  # epochs written by the training thread, inside the test's transaction
    study = study_create(
        name="xgb",
        experiment=regression_experiment,
        framework="xgboost",
        model_type="gradient_boosting",
        search_space=SPACE,
        fixed_params={"n_estimators": 15, "rounds_per_epoch": 5},
        strategy="bayesian",
        strategy_options={"n_initial_points": 2},
        max_trials=3,
        parallelism=1,
        start=True,
        user=staff_user,
    )

    execute_queued_trials(study, django_capture_on_commit_callbacks)

    study.refresh_from_db()
    trials = list(study.trials.select_related("run").order_by("number"))
    assert study.status == StudyStatus.COMPLETED
    assert [t.status for t in trials] == [TrialStatus.COMPLETED] * 3
    for trial in trials:
        assert trial.run.framework == "xgboost" and trial.run.params["n_estimators"] == 15
        assert 0.05 <= trial.params["learning_rate"] <= 0.5 and trial.params["max_depth"] in range(2, 6)
        assert trial.value == trial.run.val_metrics["rmse"] and trial.run.epochs.count() == 3
    best = min(trials, key=lambda t: t.value)
    version = study.model_version
    assert version.framework == "xgboost" and version.training_run_id == best.run_id
    assert load_model_version(version).trained.booster.num_boosted_rounds() <= 15
