"""Status machine, attempts, duplicates, the reaper and stop requests (no worker involved)."""

import os
import re
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.training.choices import RunStatus
from apps.training.models import RunEvent, TrainingRun
from apps.training.services.runs import RunStateError, run_status_transition
from apps.training.services.training_pipeline import (
    training_run_execute,
    training_run_request_stop,
    training_run_retry,
    training_runs_reap,
)

from .conftest import start_inline

pytestmark = pytest.mark.usefixtures("inline_runs")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _running(run, *, attempts=1, host=None, pid=None, heartbeat_age=0.0):
    """Puts a run in the state a worker leaves it in mid-attempt."""
    run = run_status_transition(
        run_id=run.pk,
        to=RunStatus.RUNNING,
        reason="test: attempt started",
        fields={"attempts": attempts, "worker_host": host or socket.gethostname(), "worker_pid": pid or os.getpid()},
    )
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age))
    run.refresh_from_db()
    return run


def test_cancelling_a_queued_run_ends_it_at_once_and_records_who(price_experiment, staff_user):
    run = start_inline(price_experiment)
    training_run_request_stop(run=run, user=staff_user)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.stop_reason == "cancelled"
    event = RunEvent.objects.filter(run=run).last()
    assert event.actor == staff_user and "before it started" in event.reason
    # A late delivery of its message does nothing.
    assert training_run_execute(run_id=run.pk) is None


def test_a_finished_run_can_be_neither_cancelled_nor_moved_back(price_experiment):
    run = training_run_execute(run_id=start_inline(price_experiment).pk)
    with pytest.raises(RunStateError, match="already ended"):
        training_run_request_stop(run=run)
    with pytest.raises(RunStateError, match="cannot become running"):
        run_status_transition(run_id=run.pk, to=RunStatus.RUNNING)


def test_a_message_redelivered_after_its_worker_process_died_starts_the_next_attempt(price_experiment):
    run = _running(start_inline(price_experiment), pid=_dead_pid())
    run = training_run_execute(run_id=run.pk)
    assert run.status == RunStatus.SUCCEEDED and run.attempts == 2
    reasons = list(RunEvent.objects.filter(run=run).values_list("to_status", "reason"))
    assert ("queued", reasons[2][1]) == reasons[2] and "was lost" in reasons[2][1]
    assert run.log_lines.filter(level="ERROR", message__contains="was lost").exists()


def test_the_last_attempt_lost_ends_the_run_failed_with_the_reason(price_experiment):
    run = start_inline(price_experiment)
    run = _running(run, attempts=run.max_attempts, pid=_dead_pid())
    assert training_run_execute(run_id=run.pk) is None
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert f"gave up after {run.max_attempts} of {run.max_attempts} attempts" in run.error_message


def test_a_duplicate_delivery_while_the_attempt_is_alive_elsewhere_is_dropped(price_experiment):
    run = _running(start_inline(price_experiment), host="another-host", pid=4242, heartbeat_age=1)
    assert training_run_execute(run_id=run.pk) is None
    run.refresh_from_db()
    assert (run.status, run.attempts) == (RunStatus.RUNNING, 1)


def test_the_reaper_requeues_a_run_whose_heartbeat_went_stale(price_experiment):
    stale = _running(start_inline(price_experiment), host="dead-host", heartbeat_age=3600)
    fresh = _running(start_inline(price_experiment), host="live-host", heartbeat_age=1)
    old_task = stale.celery_task_id

    assert training_runs_reap() == {"requeued": 1, "failed": 0, "cancelled": 0}

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == RunStatus.QUEUED and stale.celery_task_id != old_task
    assert fresh.status == RunStatus.RUNNING
    assert "no heartbeat" in RunEvent.objects.filter(run=stale).last().reason
    # The requeued message then trains it as attempt 2.
    assert training_run_execute(run_id=stale.pk).attempts == 2


def test_the_reaper_fails_a_stale_run_with_no_attempts_left_and_cancels_one_being_cancelled(price_experiment):
    exhausted = start_inline(price_experiment)
    exhausted = _running(exhausted, attempts=exhausted.max_attempts, host="dead-host", heartbeat_age=3600)
    cancelling = _running(start_inline(price_experiment), host="dead-host", heartbeat_age=3600)
    TrainingRun.objects.filter(pk=cancelling.pk).update(stop_requested="cancelled")

    assert training_runs_reap() == {"requeued": 0, "failed": 1, "cancelled": 1}

    exhausted.refresh_from_db()
    cancelling.refresh_from_db()
    assert exhausted.status == RunStatus.FAILED and "worker lost" in exhausted.error_message
    assert cancelling.status == RunStatus.CANCELLED


def test_a_superseded_attempt_cannot_finish_the_run(price_experiment):
    run = _running(start_inline(price_experiment), attempts=2)
    with pytest.raises(RunStateError, match="superseded"):
        run_status_transition(run_id=run.pk, to=RunStatus.SUCCEEDED, expected_attempt=1)


def test_a_failed_run_is_retried_as_a_new_run_on_the_same_data(price_experiment, staff_user):
    run = start_inline(price_experiment)
    run_status_transition(run_id=run.pk, to=RunStatus.FAILED, fields={"error_message": "boom"})
    retry = training_run_retry(run=run, user=staff_user)
    assert retry.pk != run.pk and retry.retry_of == run and retry.origin == "retry"
    assert (retry.dataset_version, retry.params, retry.seed) == (run.dataset_version, run.params, run.seed)
    with pytest.raises(RunStateError, match="only failed or cancelled"):
        training_run_retry(run=retry)


def test_bad_training_settings_are_refused_naming_the_field(price_experiment):
    with pytest.raises(ValidationError) as exc:
        start_inline(price_experiment, framework="torch", model_type="mlp", params={"learnin_rate": 0.1})
    assert "learnin_rate" in str(exc.value.message_dict["params"])
    with pytest.raises(ValidationError) as exc:
        start_inline(price_experiment, framework="torch", model_type="mlp", params={"epochs": 0})
    assert "epochs" in str(exc.value.message_dict["params"])
    with pytest.raises(ValidationError) as exc:
        start_inline(price_experiment, framework="sklearn", model_type="transformer")
    assert "model_type" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        start_inline(price_experiment, framework="sklearn", device="gpu")
    assert "CPU only" in str(exc.value.message_dict["device"])
    assert not TrainingRun.objects.exists()


def test_the_same_idempotency_key_starts_one_run(price_experiment):
    first = start_inline(price_experiment, idempotency_key="client-42")
    second = start_inline(price_experiment, idempotency_key="client-42")
    assert first.pk == second.pk and TrainingRun.objects.count() == 1


def test_a_gpu_run_is_queued_on_the_gpu_queue(price_experiment):
    run = start_inline(price_experiment, framework="torch", model_type="mlp", device="gpu")
    assert run.queue == "gpu"


@pytest.mark.django_db(transaction=True)
def test_a_stop_requested_from_an_epoch_receiver_prunes_the_run_at_the_next_boundary(price_experiment):
    """What tuning's pruner does: request a stop from run_epoch_completed in the worker process."""
    from apps.training.signals import run_epoch_completed

    seen = []

    def prune_after_first_epoch(sender, run, epoch, metrics, **kwargs):
        seen.append(epoch)
        if epoch == 1:
            training_run_request_stop(run=run, reason="pruned")

    run_epoch_completed.connect(prune_after_first_epoch, dispatch_uid="test-prune")
    try:
        run = start_inline(
            price_experiment,
            framework="torch",
            model_type="mlp",
            params={"epochs": 50, "patience": 50, "hidden_size": 8},
        )
        run = training_run_execute(run_id=run.pk)
    finally:
        run_epoch_completed.disconnect(dispatch_uid="test-prune")
    assert run.status == RunStatus.PRUNED and run.stop_reason == "pruned" and run.get_status_display() == "Pruned"
    assert seen[0] == 1 and len(seen) <= 2
    assert not run.model_versions.exists() and not run.artifact_uri


def test_a_prune_that_lands_after_the_last_epoch_still_ends_the_run_pruned_with_nothing_kept(
    price_experiment, monkeypatch
):
    """The pruner may judge an earlier epoch only once the run has trained to the end (its epoch
    signal comes from the write-behind thread). The request wins: PRUNED, never SUCCEEDED, no
    model version although this run would register one, and its artifact removed from storage."""
    from apps.registry.storage import artifact_storage
    from apps.training.services import run_execution as training_pipeline  # _train looks the step up there

    evaluate = training_pipeline._evaluate_and_describe

    def pruned_while_evaluating(*, run, **kwargs):
        result = evaluate(run=run, **kwargs)  # past the last stop check, before the artifact and final write
        training_run_request_stop(run=run, reason="pruned")
        return result

    def artifacts_of(run) -> set[str]:
        """Committed artifacts (folders with a manifest) under the run's prefix."""
        storage, prefix = artifact_storage(), f"runs/{run.pk}"
        folders = storage.listdir(prefix)[0] if storage.exists(prefix) else []
        return {f for f in folders if storage.exists(f"{prefix}/{f}/MANIFEST.json")}

    monkeypatch.setattr(training_pipeline, "_evaluate_and_describe", pruned_while_evaluating)
    run = start_inline(price_experiment)
    assert run.register_model
    before = artifacts_of(run)  # the media folder outlives test databases, whose ids start again
    run = training_run_execute(run_id=run.pk)

    assert run.status == RunStatus.PRUNED and run.stop_reason == "pruned"
    assert not run.model_versions.exists() and not run.artifact_uri and run.val_metrics in ({}, None)
    assert RunStatus.SUCCEEDED not in run.events.values_list("to_status", flat=True)
    assert "after its last epoch" in run.events.last().reason
    assert run.log_lines.filter(level="WARNING", message__contains="request came after the last epoch").exists()
    assert artifacts_of(run) == before, "the artifact was kept"


def test_a_prune_that_comes_after_the_run_ended_is_refused(price_experiment):
    run = training_run_execute(run_id=start_inline(price_experiment).pk)
    with pytest.raises(RunStateError, match="already ended"):
        training_run_request_stop(run=run, reason="pruned")
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.stop_requested == ""


def test_a_queued_run_that_is_pruned_ends_pruned_at_once_and_every_screen_says_pruned(
    price_experiment, staff_user, staff_api
):
    from django.test import Client

    run = start_inline(price_experiment)
    run = training_run_request_stop(run=run, reason="pruned")
    assert (run.status, run.stop_reason) == (RunStatus.PRUNED, "pruned")
    assert staff_api.get(f"/api/v1/runs/{run.pk}/").json()["status"] == "pruned"
    admin = Client()
    admin.force_login(staff_user)
    # The run list's badge; the run page itself shows the live widget, which reads the API above.
    listing = admin.get("/admin/training/trainingrun/").content.decode()
    assert re.findall(r'data-status="(\w+)">([^<]+)<', listing) == [("pruned", "Pruned")]
    assert training_run_execute(run_id=run.pk) is None  # a late delivery of its message does nothing
    with pytest.raises(RunStateError, match="cannot become"):
        run_status_transition(run_id=run.pk, to=RunStatus.SUCCEEDED)


def test_the_reaper_ends_a_stale_run_that_was_being_pruned_as_pruned(price_experiment):
    pruning = _running(start_inline(price_experiment), host="dead-host", heartbeat_age=3600)
    TrainingRun.objects.filter(pk=pruning.pk).update(stop_requested="pruned")

    assert training_runs_reap()["cancelled"] == 1

    pruning.refresh_from_db()
    assert (pruning.status, pruning.stop_reason) == (RunStatus.PRUNED, "pruned")


def test_a_run_whose_message_the_broker_refuses_ends_failed_instead_of_waiting_forever(
    price_experiment, monkeypatch, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError

    from mlops_portal.celery import app

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(app, "send_task", broker_down)
    from apps.training.services.experiments import experiment_training_config
    from apps.training.services.training_pipeline import training_run_start

    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_start(experiment=price_experiment, **experiment_training_config(experiment=price_experiment))
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "could not queue the run on 'cpu'" in run.error_message and "Connection refused" in run.error_message
