"""A worker killed mid-run never leaves the run RUNNING: redelivery to a new attempt, or the reaper.

(The reaper failing a run whose last attempt was lost is in test_run_lifecycle.)"""

import os
import signal
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.training import conf
from apps.training.choices import RunStatus
from apps.training.models import RunEvent
from apps.training.services.training_pipeline import training_runs_reap

from .conftest import start_inline
from .waiting import process_exited, wait_for, wait_for_epoch, wait_for_run

pytestmark = pytest.mark.worker

# 40 reported stages: long enough to be killed after the first, short enough to finish fast after.
LONG = {"max_iter": 400, "stage_size": 10, "patience": 1000, "min_samples_leaf": 5}


@pytest.fixture
def private_queue(settings):
    """Route this test's runs to a queue only the test's own workers consume."""
    name = f"crash-{uuid.uuid4().hex[:8]}"
    settings.TRAINING_CPU_QUEUE = name
    return name


def _start(experiment):
    from apps.training.services.training_pipeline import _dispatch

    run = start_inline(experiment, framework="sklearn", model_type="gradient_boosting", params=LONG)
    _dispatch(run.pk, run.queue, run.celery_task_id)
    return run


def test_a_sigkilled_pool_process_is_redelivered_and_the_next_attempt_finishes(
    worker_factory, price_experiment, private_queue
):
    worker = worker_factory(queues=private_queue, concurrency=1)
    run = _start(price_experiment)
    run = wait_for_epoch(run, 1)
    assert run.status == RunStatus.RUNNING and run.attempts == 1
    assert run.worker_pid in worker.child_pids()

    os.kill(run.worker_pid, signal.SIGKILL)

    run = wait_for_run(run, timeout=120)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert run.attempts == 2
    lost = RunEvent.objects.filter(run=run, from_status="running", to_status="queued").get()
    assert "was lost" in lost.reason and "redelivered" in lost.reason
    assert run.model_versions.count() == 1


def test_a_whole_worker_sigkilled_is_found_by_the_reaper_and_finished_by_another(
    worker_factory, price_experiment, private_queue
):
    first = worker_factory(queues=private_queue, concurrency=1)
    run = _start(price_experiment)
    run = wait_for_epoch(run, 1)
    pool_pid = run.worker_pid
    first.kill()  # main process and pool: the broker keeps the message unacknowledged
    wait_for(lambda: process_exited(pool_pid), timeout=10, what=f"the killed pool process {pool_pid} to exit")
    # The reaper's clock, not the test's, moves past the stale bound: nothing can heartbeat any more,
    # so the run's last heartbeat only ages. Just after the kill it is still fresh and left alone.
    assert training_runs_reap() == {"requeued": 0, "failed": 0, "cancelled": 0}
    worker_factory(queues=private_queue, concurrency=1)  # the replacement, idle until the reaper requeues

    stale_after = timedelta(seconds=float(conf.get("TRAINING_HEARTBEAT_STALE_SECONDS")))
    later = timezone.now() + stale_after + timedelta(seconds=1)
    assert training_runs_reap(now=later) == {"requeued": 1, "failed": 0, "cancelled": 0}

    run = wait_for_run(run, timeout=120)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert run.attempts == 2
    assert "no heartbeat" in RunEvent.objects.filter(run=run, from_status="running", to_status="queued").get().reason
