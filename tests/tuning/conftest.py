"""Tuning fixtures: tiny real datasets and experiments, built through the other apps' services."""

import time

import pytest

from tests.training import factories


@pytest.fixture
def regression_experiment(staff_user):
    """200 rows of scikit-learn's diabetes table; sklearn linear by default; rmse, minimised."""
    dataset, _, spec = factories.diabetes_dataset(user=staff_user)
    return factories.experiment(dataset=dataset, spec=spec, name="tiny-diabetes", user=staff_user)


ALPHA_SPACE = [{"name": "alpha", "type": "float", "low": 0.001, "high": 100.0, "log": True}]


def wait_for_study(study, *, statuses=("completed", "stopped", "failed"), timeout: float = 120):
    from apps.tuning.models import TuningStudy

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = TuningStudy.objects.get(pk=study.pk)
        if fresh.status in statuses:
            return fresh
        time.sleep(0.2)
    trials = list(TuningStudy.objects.get(pk=study.pk).trials.values_list("number", "status"))
    raise AssertionError(f"study {study.pk} did not reach {statuses} within {timeout}s; trials: {trials}")


@pytest.fixture
def parked_runs(settings):
    """Runs started by studies go to a queue no worker reads; the test executes them itself.

    The watcher thread of an in-process run has its own connection and cannot see the test's
    uncommitted rows, so it must not heartbeat during the test either."""
    settings.TRAINING_CPU_QUEUE = "tuning-tests-parked"
    settings.TRAINING_HEARTBEAT_SECONDS = 3600


def execute_queued_trials(study, capture, *, rounds: int = 30):
    """Trains the study's queued trials in-process, as a worker would, until none is left; the
    captured on-commit callbacks deliver run_finished just as a committed worker transaction does."""
    from apps.training.services.training_pipeline import training_run_execute
    from apps.tuning.models import Trial

    for _ in range(rounds):
        queued = list(Trial.objects.filter(study=study, status="queued", run__status="queued").order_by("number"))
        if not queued:
            return
        for trial in queued:
            with capture(execute=True):
                training_run_execute(run_id=trial.run_id)
    raise AssertionError("the study kept queueing trials")
