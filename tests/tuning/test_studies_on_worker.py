"""Studies end to end: a real Celery worker, PostgreSQL and Redis; sklearn trials on tiny data."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.registry.loading import load_model_version
from apps.training.choices import RunStatus
from apps.training.models import RunEvent, TrainingRun
from apps.training.services.training_pipeline import training_runs_reap
from apps.tuning.choices import StudyStatus, TrialStatus
from apps.tuning.services import studies_keep, study_create
from apps.tuning.space import SearchSpace
from tests.training.waiting import process_exited, wait_for

from .conftest import wait_for_study

pytestmark = pytest.mark.worker

LINEAR_SPACE = [
    {"name": "alpha", "type": "float", "low": 0.01, "high": 10.0, "log": True, "grid_points": 3},
    {"name": "max_iter", "type": "int", "low": 50, "high": 100, "grid_points": 2},
]


def assert_best_registered(study):
    trials = list(study.trials.select_related("run"))
    best = min((t for t in trials if t.value is not None), key=lambda t: t.value)  # rmse: lower is better
    version = study.model_version
    assert version is not None and version.training_run_id == best.run_id
    assert version.tags["tuning_study"] == study.name and version.tags["tuning_trial"] == best.number
    assert version.params["alpha"] == best.params["alpha"]
    assert load_model_version(version).signature == best.run.signature
    assert TrainingRun.objects.filter(trial_id__in=[t.pk for t in trials], model_versions__isnull=False).count() == 1


def test_a_grid_study_covers_exactly_its_grid(celery_worker, regression_experiment, staff_user):
    study = study_create(
        name="grid",
        experiment=regression_experiment,
        search_space=LINEAR_SPACE,
        strategy="grid",
        parallelism=2,
        user=staff_user,
        start=True,
    )

    study = wait_for_study(study)

    assert study.status == StudyStatus.COMPLETED and study.max_trials == 6
    space = SearchSpace.from_spec(LINEAR_SPACE)
    trials = list(study.trials.all())
    assert sorted(space.key(t.params) for t in trials) == sorted(space.key(p) for p in space.grid())
    assert all(t.status == TrialStatus.COMPLETED and t.value is not None for t in trials)
    assert_best_registered(study)


def test_a_random_study_registers_its_best_model(celery_worker, regression_experiment, staff_user):
    study = study_create(
        name="random",
        experiment=regression_experiment,
        search_space=LINEAR_SPACE,
        strategy="random",
        max_trials=4,
        parallelism=2,
        user=staff_user,
        start=True,
    )

    study = wait_for_study(study)

    assert study.status == StudyStatus.COMPLETED
    assert study.trials.filter(status=TrialStatus.COMPLETED).count() == 4
    assert_best_registered(study)


def test_a_bayesian_study_with_parallel_trials_registers_its_best_model(
    celery_worker, regression_experiment, staff_user
):
    study = study_create(
        name="bayes",
        experiment=regression_experiment,
        search_space=LINEAR_SPACE,
        strategy="bayesian",
        strategy_options={"n_initial_points": 2},
        max_trials=5,
        parallelism=2,
        user=staff_user,
        start=True,
    )

    study = wait_for_study(study)

    assert study.status == StudyStatus.COMPLETED
    trials = list(study.trials.all())
    assert len(trials) == 5 and len({SearchSpace.from_spec(LINEAR_SPACE).key(t.params) for t in trials}) == 5
    assert all(t.status == TrialStatus.COMPLETED for t in trials)
    assert_best_registered(study)


def test_pruning_stops_a_bad_trial_early(celery_worker, regression_experiment, staff_user):
    # A good learning rate first, then a hopeless one: at epoch 3 its error is far above the median.
    study = study_create(
        name="pruned",
        experiment=regression_experiment,
        model_type="gradient_boosting",
        search_space=[{"name": "learning_rate", "type": "categorical", "choices": [0.5, 0.001]}],
        fixed_params={"max_iter": 30, "stage_size": 1, "patience": 30},
        strategy="grid",
        strategy_options={"shuffle": False},
        parallelism=1,
        pruner="median",
        pruner_options={"n_startup_trials": 1, "n_warmup_epochs": 2},
        user=staff_user,
        start=True,
    )

    study = wait_for_study(study)

    good, bad = study.trials.select_related("run").order_by("number")
    assert good.status == TrialStatus.COMPLETED and len(good.intermediate_values) == 30
    assert bad.status == TrialStatus.PRUNED and bad.prune_requested_at_epoch == 3 and bad.value is None
    assert bad.run.status == RunStatus.PRUNED and bad.run.stop_reason == "pruned"
    assert not bad.run.artifact_uri and not bad.run.model_versions.exists()
    assert len(bad.intermediate_values) < 30  # it stopped well before its 30 epochs
    assert study.status == StudyStatus.COMPLETED and study.model_version.training_run_id == good.run_id


def test_a_study_interrupted_by_a_worker_crash_resumes_without_duplicates(
    celery_worker, worker_factory, regression_experiment, staff_user, settings
):
    settings.TRAINING_HEARTBEAT_STALE_SECONDS = 8  # for the reaper this test calls as beat would
    study = study_create(
        name="crash",
        experiment=regression_experiment,
        model_type="gradient_boosting",
        search_space=[
            {"name": "learning_rate", "type": "float", "low": 0.01, "high": 0.3, "log": True},
            {"name": "max_leaf_nodes", "type": "int", "low": 4, "high": 16},
        ],
        fixed_params={"max_iter": 80, "stage_size": 1, "patience": 80, "min_samples_leaf": 5},
        strategy="random",
        max_trials=3,
        parallelism=2,
        user=staff_user,
        start=True,
    )
    deadline = time.monotonic() + 90
    training = TrainingRun.objects.filter(trial_id__isnull=False, status=RunStatus.RUNNING, current_epoch__gte=2)
    while training.count() < 2:
        assert time.monotonic() < deadline, "the first two trials did not start training"
        time.sleep(0.1)

    celery_worker.kill()  # SIGKILL of the whole worker mid-training, as a crashed host would
    pool_pids = dict(TrainingRun.objects.filter(status=RunStatus.RUNNING).values_list("pk", "worker_pid"))
    interrupted = set(pool_pids)
    for pid in pool_pids.values():
        wait_for(lambda: process_exited(pid), timeout=10, what=f"the killed pool process {pid} to exit")
    worker_factory(extra_env={"TRAINING_HEARTBEAT_SECONDS": "1", "TRAINING_HEARTBEAT_STALE_SECONDS": "8"})
    # The reaper's clock moves past the stale bound rather than the test waiting it out: the killed
    # attempts can no longer heartbeat, so their last heartbeats only age.
    later = timezone.now() + timedelta(seconds=settings.TRAINING_HEARTBEAT_STALE_SECONDS + 1)
    assert training_runs_reap(now=later) == {"requeued": 2, "failed": 0, "cancelled": 0}
    deadline = time.monotonic() + 150
    while study.__class__.objects.get(pk=study.pk).status == StudyStatus.RUNNING:
        assert time.monotonic() < deadline, list(study.trials.values_list("number", "status"))
        training_runs_reap()  # beat's reaper and keeper, called the way beat calls them
        studies_keep()
        time.sleep(1)

    study.refresh_from_db()
    trials = list(study.trials.order_by("number"))
    assert study.status == StudyStatus.COMPLETED
    assert [t.number for t in trials] == [1, 2, 3] and all(t.status == TrialStatus.COMPLETED for t in trials)
    assert len({SearchSpace.from_spec(study.search_space).key(t.params) for t in trials}) == 3
    assert TrainingRun.objects.filter(trial_id__in=[t.pk for t in trials]).count() == 3  # one run per trial
    assert len(interrupted) == 2
    for run in TrainingRun.objects.filter(pk__in=interrupted):
        assert run.attempts == 2 and run.status == RunStatus.SUCCEEDED
        assert RunEvent.objects.filter(run=run, to_status=RunStatus.QUEUED, reason__contains="requeued").exists()
    assert study.model_version is not None
