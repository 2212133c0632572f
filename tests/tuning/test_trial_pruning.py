"""A pruned trial and its run say the same thing: the run is PRUNED whenever the trial is, however late
the pruner's verdict reaches it, and a verdict that comes after the run ended is refused (the trial keeps
its measured result). Runs execute in-process; the pruner's verdicts come from tuning's own receiver."""

import pytest

from apps.training.choices import RunStatus
from apps.training.services.training_pipeline import training_run_execute
from apps.training.signals import run_epoch_completed
from apps.tuning import receivers
from apps.tuning.choices import StudyStatus, TrialStatus
from apps.tuning.services import study_create, trial_record_run_end

from .conftest import ALPHA_SPACE

pytestmark = pytest.mark.usefixtures("parked_runs")


@pytest.fixture(autouse=True)
def _epochs_from_the_training_thread(settings):
    # Epoch signals (and so the pruner) run in the training thread, which sees the test's rows.
    settings.TRAINING_WRITE_BEHIND = False


@pytest.fixture
def good_then_hopeless(regression_experiment, staff_user, django_capture_on_commit_callbacks):
    """A two-trial grid study whose first trial (a good learning rate) has completed with its curve
    stored; the second (a hopeless learning rate) is queued, and the median rule will prune it after
    epoch 2."""
    study = study_create(
        name="pruning",
        experiment=regression_experiment,
        model_type="gradient_boosting",
        search_space=[{"name": "learning_rate", "type": "categorical", "choices": [0.5, 0.001]}],
        fixed_params={"max_iter": 12, "stage_size": 1, "patience": 12},
        strategy="grid",
        strategy_options={"shuffle": False},
        parallelism=1,
        pruner="median",
        pruner_options={"n_startup_trials": 1, "n_warmup_epochs": 2},
        user=staff_user,
        start=True,
    )
    good = study.trials.get(number=1)
    with django_capture_on_commit_callbacks(execute=True):
        training_run_execute(run_id=good.run_id)
    good.refresh_from_db()
    assert good.status == TrialStatus.COMPLETED and len(good.intermediate_values) == 12
    return study, study.trials.select_related("run").get(number=2)


@pytest.fixture
def held_verdicts():
    """Holds back tuning's epoch receiver, as a slow write-behind thread would; `deliver` hands
    what it held to the receiver later."""
    held = []

    def hold(sender, run, epoch, metrics, **kwargs):
        held.append((run, epoch, metrics))

    run_epoch_completed.disconnect(dispatch_uid="tuning.run_epoch_completed")
    run_epoch_completed.connect(hold, dispatch_uid="tests.held-epochs", weak=False)
    yield held
    run_epoch_completed.disconnect(dispatch_uid="tests.held-epochs")
    run_epoch_completed.connect(receivers.on_run_epoch_completed, dispatch_uid="tuning.run_epoch_completed")


def deliver(held):
    for run, epoch, metrics in held:
        receivers.on_run_epoch_completed(sender=None, run=run, epoch=epoch, metrics=metrics)


def test_a_prune_that_reaches_the_run_after_its_last_epoch_ends_run_and_trial_pruned(
    good_then_hopeless, held_verdicts, monkeypatch, django_capture_on_commit_callbacks
):
    from apps.training.services import run_execution as training_pipeline  # _train looks the step up there

    evaluate = training_pipeline._evaluate_and_describe

    def verdicts_arrive_while_evaluating(**kwargs):
        result = evaluate(**kwargs)  # after the run's last stop check, before its artifact and final write
        deliver(held_verdicts)
        return result

    monkeypatch.setattr(training_pipeline, "_evaluate_and_describe", verdicts_arrive_while_evaluating)
    study, hopeless = good_then_hopeless
    with django_capture_on_commit_callbacks(execute=True):
        training_run_execute(run_id=hopeless.run_id)
    assert len(held_verdicts) == 12, "it trained every epoch before any verdict arrived"

    hopeless.refresh_from_db()
    run = hopeless.run
    run.refresh_from_db()
    assert hopeless.status == TrialStatus.PRUNED and hopeless.prune_requested_at_epoch == 3
    assert (run.status, run.stop_reason, run.get_status_display()) == (RunStatus.PRUNED, "pruned", "Pruned")
    assert not run.artifact_uri and not run.model_versions.exists()
    assert RunStatus.SUCCEEDED not in run.events.values_list("to_status", flat=True)
    study.refresh_from_db()
    assert study.status == StudyStatus.COMPLETED
    assert study.model_version.training_run_id == study.trials.get(number=1).run_id


def test_a_prune_that_comes_after_the_run_ended_is_refused_and_the_trial_keeps_its_result(
    good_then_hopeless, held_verdicts
):
    study, hopeless = good_then_hopeless
    # No on-commit callbacks: the run has ended but its run_finished (which records the trial) has not
    # been delivered yet, the window in which a late verdict could still land.
    run = training_run_execute(run_id=hopeless.run_id)
    assert run.status == RunStatus.SUCCEEDED

    deliver(held_verdicts)  # the median rule would prune it at epoch 3: too late, the run has ended

    hopeless.refresh_from_db()
    assert hopeless.prune_requested_at_epoch is None and hopeless.status == TrialStatus.RUNNING
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.stop_requested == ""
    trial = trial_record_run_end(run_id=run.pk)
    assert trial.status == TrialStatus.COMPLETED and trial.value == run.val_metrics["rmse"]


def test_runs_of_pruned_trials_from_before_the_pruned_status_read_pruned_after_the_migrations(regression_experiment):
    """What the issue saw (trial 10, run 19: Succeeded beside other pruned trials' Cancelled), repaired
    by migrations training 0006 and tuning 0003."""
    from importlib import import_module

    from django.apps import apps

    from apps.training.services.runs import run_status_transition
    from apps.tuning.services import trial_status_change

    study = study_create(
        name="old", experiment=regression_experiment, search_space=ALPHA_SPACE, max_trials=2, parallelism=2, start=True
    )
    late, early = study.trials.select_related("run").order_by("number")
    for trial in (late, early):
        run_status_transition(run_id=trial.run_id, to=RunStatus.RUNNING)
    run_status_transition(run_id=late.run_id, to=RunStatus.SUCCEEDED)  # the prune came after its last epoch
    run_status_transition(run_id=early.run_id, to=RunStatus.CANCELLED, fields={"stop_reason": "pruned"})
    for trial in (late, early):
        trial_status_change(trial=trial, to=TrialStatus.PRUNED, reason="pruned")

    import_module("apps.training.migrations.0006_run_status_pruned").forward(apps, None)
    import_module("apps.tuning.migrations.0003_pruned_trial_runs").forward(apps, None)

    for trial in (late, early):
        trial.run.refresh_from_db()
        assert (trial.run.status, trial.run.stop_reason) == (RunStatus.PRUNED, "pruned")
        assert trial.run.events.last().to_status == RunStatus.PRUNED and "migration" in trial.run.events.last().reason
