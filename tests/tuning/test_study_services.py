"""Study services without a worker: runs are executed in-process where a test needs them to end."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from apps.registry.models import ModelVersion
from apps.training.choices import RunOrigin, RunStatus
from apps.training.models import TrainingRun
from apps.training.services.runs import run_status_transition
from apps.tuning.choices import StudyStatus, TrialStatus
from apps.tuning.models import Trial, TuningEvent, TuningStudy
from apps.tuning.services import (
    StudyStateError,
    studies_keep,
    study_advance,
    study_create,
    study_pause,
    study_resume,
    study_start,
    study_stop,
    trial_record_run_end,
)

from tests.training.waiting import wait_for

from .conftest import ALPHA_SPACE, execute_queued_trials

pytestmark = pytest.mark.usefixtures("parked_runs")


def create(experiment, **kwargs):
    kwargs.setdefault("name", "study")
    kwargs.setdefault("search_space", ALPHA_SPACE)
    return study_create(experiment=experiment, **kwargs)


def test_starting_a_study_queues_parallelism_trials_as_runs_that_register_nothing(regression_experiment, staff_user):
    study = create(regression_experiment, parallelism=2, max_trials=5, fixed_params={"max_iter": 50}, user=staff_user)
    assert study.status == StudyStatus.DRAFT and not study.trials.exists()

    study = study_start(study=study, user=staff_user)

    assert study.status == StudyStatus.RUNNING and study.started_at
    trials = list(study.trials.select_related("run"))
    assert [t.number for t in trials] == [1, 2]
    for trial in trials:
        run = trial.run
        assert trial.status == TrialStatus.QUEUED and run.status == RunStatus.QUEUED
        assert run.trial_id == trial.pk and run.register_model is False and run.origin == RunOrigin.TUNING
        assert run.params["alpha"] == trial.params["alpha"] and run.params["max_iter"] == 50
        assert run.seed == study.seed and run.experiment == regression_experiment
    assert list(study.events.filter(trial=None).values_list("to_status", flat=True)) == ["draft", "running"]


def test_a_study_spends_its_budget_and_registers_its_best_trial_tagged_with_the_study(
    regression_experiment, staff_user, django_capture_on_commit_callbacks
):
    study = create(regression_experiment, strategy="random", parallelism=2, max_trials=4, start=True, user=staff_user)

    execute_queued_trials(study, django_capture_on_commit_callbacks)

    study.refresh_from_db()
    trials = list(study.trials.order_by("number"))
    assert study.status == StudyStatus.COMPLETED and study.finished_at
    assert [t.status for t in trials] == [TrialStatus.COMPLETED] * 4
    best = min(trials, key=lambda t: t.value)  # rmse: lower is better
    assert all(t.value == t.run.val_metrics["rmse"] for t in trials)
    version = study.model_version
    assert version.training_run_id == best.run_id and version.registered_model.name == regression_experiment.name
    assert version.tags["tuning_study"] == "study" and version.tags["tuning_trial"] == best.number
    assert ModelVersion.objects.count() == 1  # trials themselves register nothing
    last = study.events.filter(trial=None).last()
    assert last.to_status == "completed" and "all 4 trials done" in last.reason and f"#{best.number}" in last.reason


@pytest.mark.parametrize(
    "space, words",
    [
        ([{"name": "depth", "type": "int", "low": 1, "high": 3}], "'depth': is not a hyperparameter of sklearn linear"),
        (
            [{"name": "alpha", "type": "float", "low": 1e-3, "high": 1e6, "log": True}],
            "'alpha': 1000000.0 is not accepted",
        ),
        ([{"name": "max_iter", "type": "float", "low": 10, "high": 20}], "'max_iter': takes whole numbers"),
        ([{"name": "alpha", "type": "float", "low": 0, "high": 1, "log": True}], "'alpha': a log-scale range needs"),
        ([{"name": "alpha", "type": "float", "low": 2, "high": 1}], "'alpha': low (2) is greater than high (1)"),
        ([{"name": "max_iter", "type": "int", "low": 50, "high": 50}], "'max_iter': the range is empty"),
        ([], "non-empty list"),
    ],
)
def test_an_invalid_search_space_is_refused_naming_the_parameter(regression_experiment, space, words):
    with pytest.raises(ValidationError) as caught:
        create(regression_experiment, search_space=space)
    assert words in caught.value.message_dict["search_space"][0]
    assert not TuningStudy.objects.exists()


def test_a_categorical_parameter_must_offer_only_values_the_model_accepts(regression_experiment):
    space = [{"name": "l2_regularization", "type": "categorical", "choices": [0.0, -1.0]}]
    with pytest.raises(ValidationError) as caught:
        create(regression_experiment, model_type="gradient_boosting", search_space=space)
    assert "'l2_regularization': -1.0 is not accepted" in caught.value.message_dict["search_space"][0]


@pytest.mark.parametrize(
    "kwargs, field, words",
    [
        ({"fixed_params": {"alpha": 1.0}}, "fixed_params", "'alpha' is also in the search space"),
        ({"fixed_params": {"max_iter": 5}}, "fixed_params", "max_iter"),
        ({"fixed_params": {"colour": "red"}}, "fixed_params", "colour"),
        ({"objective_metric": "accuracy"}, "objective_metric", "not a regression metric"),
        ({"objective_metric": "rmse", "direction": "maximize"}, "direction", "rmse should be minimized"),
        ({"strategy": "annealing"}, "strategy", "must be one of"),
        ({"strategy": "bayesian", "strategy_options": {"acq_func": "MES"}}, "strategy_options", "acq_func"),
        ({"pruner": "median", "pruner_options": {"n_startup_trials": 0}}, "pruner_options", "n_startup_trials"),
        ({"parallelism": 0}, "parallelism", "at least 1"),
        ({"max_trials": 0}, "max_trials", "at least 1"),
        ({"device": "gpu"}, "device", "CPU only"),
        ({"model_type": "forest"}, "model_type", "no model type 'forest'"),
    ],
)
def test_a_bad_setting_is_refused_with_a_message_naming_the_field(regression_experiment, kwargs, field, words):
    with pytest.raises(ValidationError) as caught:
        create(regression_experiment, **kwargs)
    assert words in " ".join(caught.value.message_dict[field])


def test_names_are_unique(regression_experiment):
    create(regression_experiment)
    with pytest.raises(ValidationError) as caught:
        create(regression_experiment)
    assert "already exists" in caught.value.message_dict["name"][0]


def test_a_grid_study_defaults_its_budget_to_the_size_of_the_grid(regression_experiment):
    space = [
        {"name": "alpha", "type": "float", "low": 0.01, "high": 1.0, "log": True, "grid_points": 3},
        {"name": "max_iter", "type": "int", "low": 50, "high": 52},
    ]
    assert create(regression_experiment, strategy="grid", search_space=space).max_trials == 9


def test_pause_resume_and_stop_follow_the_state_machine_and_leave_an_event_each(
    regression_experiment, staff_user, django_capture_on_commit_callbacks
):
    study = create(regression_experiment, max_trials=3, start=True, user=staff_user)
    with pytest.raises(StudyStateError):
        study_resume(study=study, user=staff_user)

    study = study_pause(study=study, user=staff_user)
    assert study.status == StudyStatus.PAUSED and study.running_since is None and study.running_seconds > 0
    execute_queued_trials(study, django_capture_on_commit_callbacks)
    assert study.trials.count() == 1  # the running trial finished; no new one while paused
    assert study.trials.get().status == TrialStatus.COMPLETED

    study = study_resume(study=study, user=staff_user)
    assert study.status == StudyStatus.RUNNING and study.trials.count() == 2

    with django_capture_on_commit_callbacks(execute=True):
        study = study_stop(study=study, user=staff_user)
    assert study.status == StudyStatus.STOPPED
    assert [t.status for t in study.trials.order_by("number")] == [TrialStatus.COMPLETED, TrialStatus.CANCELLED]
    assert study.model_version.training_run_id == study.trials.get(number=1).run_id
    with pytest.raises(StudyStateError):
        study_pause(study=study, user=staff_user)
    reasons = list(study.events.filter(trial=None).values_list("to_status", "actor__username"))
    assert reasons == [
        ("draft", "staffer"),
        ("running", "staffer"),
        ("paused", "staffer"),
        ("running", "staffer"),
        ("stopped", "staffer"),
    ]


def test_a_spent_time_budget_ends_the_study_once_its_trials_are_done(
    regression_experiment, django_capture_on_commit_callbacks
):
    study = create(regression_experiment, max_trials=10, max_wall_seconds=60, start=True)
    TuningStudy.objects.filter(pk=study.pk).update(running_seconds=60)  # an hour of the budget gone by

    assert study_advance(study_id=study.pk) == []  # the one active trial goes on, nothing new starts
    execute_queued_trials(study, django_capture_on_commit_callbacks)

    study.refresh_from_db()
    assert study.status == StudyStatus.COMPLETED and study.trials.count() == 1
    assert "time budget of 60 s used" in study.events.filter(trial=None).last().reason


def test_a_failed_run_fails_its_trial_and_the_study_moves_on(regression_experiment):
    study = create(regression_experiment, max_trials=2, start=True)
    run = study.trials.get().run
    run_status_transition(run_id=run.pk, to=RunStatus.RUNNING)
    run_status_transition(run_id=run.pk, to=RunStatus.FAILED, fields={"error_message": "out of memory"})

    trial_record_run_end(run_id=run.pk)

    first, second = study.trials.order_by("number")
    assert first.status == TrialStatus.FAILED and first.error == "out of memory" and first.value is None
    assert second.status == TrialStatus.QUEUED


def test_a_study_whose_trials_all_fail_ends_failed_without_a_model(regression_experiment):
    study = create(regression_experiment, max_trials=1, start=True)
    run = study.trials.get().run
    run_status_transition(run_id=run.pk, to=RunStatus.FAILED, fields={"error_message": "boom"})
    trial_record_run_end(run_id=run.pk)
    study.refresh_from_db()
    assert study.status == StudyStatus.FAILED and study.model_version is None
    assert "no trial completed" in study.events.filter(trial=None).last().reason


def test_the_keeper_records_a_trial_whose_run_ended_unnoticed_and_tops_the_study_up(regression_experiment):
    study = create(regression_experiment, max_trials=3, start=True)
    run = study.trials.get().run
    # run_finished is sent on commit, which never comes in this test: as if the worker died right then.
    run_status_transition(run_id=run.pk, to=RunStatus.FAILED, fields={"error_message": "lost"})
    assert study.trials.get().status == TrialStatus.QUEUED

    counts = studies_keep()

    assert counts["recorded"] == 1 and counts["launched"] == 0  # recording already topped it up
    assert list(study.trials.order_by("number").values_list("status", flat=True)) == ["failed", "queued"]
    assert studies_keep()["launched"] == 0  # idempotent: nothing is launched twice


def test_every_status_change_is_an_event_row(regression_experiment):
    study = create(regression_experiment, max_trials=2, start=True)
    run = study.trials.get().run
    run_status_transition(run_id=run.pk, to=RunStatus.FAILED)
    trial_record_run_end(run_id=run.pk)
    trial_events = TuningEvent.objects.filter(study=study, trial__number=1).values_list("from_status", "to_status")
    assert list(trial_events) == [("", "queued"), ("queued", "failed")]


@pytest.mark.django_db(transaction=True)
def test_two_workers_finishing_trials_at_once_do_not_launch_more_than_the_budget(regression_experiment):
    study = create(regression_experiment, strategy="random", parallelism=2, max_trials=3, start=True)
    runs = list(TrainingRun.objects.filter(trial_id__in=study.trials.values("pk")))
    # Both runs end "at once": no signal yet, each worker's receiver is about to record its own.
    TrainingRun.objects.filter(pk__in=[r.pk for r in runs]).update(
        status=RunStatus.SUCCEEDED, val_metrics={"rmse": 50.0}
    )
    errors, backend_pids = [], []

    def finish(run_id):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend_pids.append(cursor.fetchone()[0])
            trial_record_run_end(run_id=run_id)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    def both_receivers_wait_on_a_row_lock():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted AND pid = ANY(%s)", [list(backend_pids)]
            )
            return cursor.fetchone()[0] == len(threads)

    threads = [threading.Thread(target=finish, args=(r.pk,)) for r in runs]
    # Holding both trials' row locks lines the two receivers up at the same point; releasing them
    # lets both go at once, each sure its own trial just ended and a slot just opened. Released only
    # once PostgreSQL shows both waiting: released earlier, they could run one after the other and
    # the test would pass without any race having happened.
    with transaction.atomic():
        list(Trial.objects.select_for_update().filter(study=study))
        for thread in threads:
            thread.start()
        wait_for(
            both_receivers_wait_on_a_row_lock,
            timeout=20,
            interval=0.02,
            what="both receivers to wait on a row lock (pg_locks shows fewer ungranted)",
        )
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a receiver did not finish within 30 s"

    assert errors == []
    assert sorted(Trial.objects.filter(study=study).values_list("number", flat=True)) == [1, 2, 3]
    assert Trial.objects.filter(study=study, status=TrialStatus.COMPLETED).count() == 2


def test_only_a_draft_can_be_edited_and_edits_are_validated(regression_experiment):
    from apps.tuning.services import study_update

    study = create(regression_experiment, max_trials=3)
    study = study_update(study=study, data={"max_trials": 5, "parallelism": 2})
    assert (study.max_trials, study.parallelism) == (5, 2)
    with pytest.raises(ValidationError) as caught:
        study_update(study=study, data={"search_space": [{"name": "alpha", "type": "float", "low": 3, "high": 1}]})
    assert "'alpha'" in caught.value.message_dict["search_space"][0]

    study_start(study=study)
    with pytest.raises(StudyStateError):
        study_update(study=study, data={"max_trials": 50})
