"""A QUEUED run whose queue message is gone (queued while no worker ran, then the broker restarted)
does not wait forever: the reaper publishes it again, and gives up naming the lost message."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.training.choices import RunStatus
from apps.training.models import RunEvent, TrainingRun
from apps.training.services.training_pipeline import training_runs_reap

from .conftest import start_inline
from .waiting import wait_for_run

pytestmark = pytest.mark.worker

NOTHING = {"requeued": 0, "failed": 0, "cancelled": 0}


@pytest.fixture
def private_queue(settings):
    name = f"lost-{uuid.uuid4().hex[:8]}"
    settings.TRAINING_CPU_QUEUE = name
    settings.TRAINING_QUEUED_STALE_SECONDS = 600
    return name


def _purge(queue: str) -> None:
    from mlops_portal.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)


def _lost_message_events(run):
    return RunEvent.objects.filter(
        run=run, from_status=RunStatus.QUEUED, to_status=RunStatus.QUEUED, reason__startswith="queue message lost"
    )


def test_a_queued_run_whose_message_never_reached_the_broker_is_published_again_and_a_worker_finishes_it(
    worker_factory, price_experiment, private_queue
):
    run = start_inline(price_experiment, framework="sklearn", model_type="linear")  # no message at all
    queued_at = TrainingRun.objects.get(pk=run.pk).queued_at

    assert training_runs_reap(now=queued_at + timedelta(seconds=60)) == NOTHING  # young: left alone

    assert training_runs_reap(now=queued_at + timedelta(seconds=601)) == NOTHING | {"requeued": 1}
    event = _lost_message_events(run).get()
    assert run.celery_task_id in event.reason and "not on the broker" in event.reason
    assert TrainingRun.objects.get(pk=run.pk).celery_task_id == run.celery_task_id  # the same task id

    worker_factory(queues=private_queue, concurrency=1)
    run = wait_for_run(run, timeout=60)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert run.attempts == 1
    assert run.model_versions.count() == 1


def test_a_queued_run_whose_message_waits_on_the_broker_is_not_touched_and_one_lost_too_often_fails_naming_it(
    transactional_db, price_experiment, private_queue, settings
):
    from apps.training.services.training_pipeline import _dispatch

    settings.CELERY_TASK_MAX_ATTEMPTS = 2
    run = start_inline(price_experiment, framework="sklearn", model_type="linear")
    _dispatch(run.pk, run.queue, run.celery_task_id)  # waiting: no worker consumes this queue
    later = timezone.now() + timedelta(seconds=601)
    try:
        assert training_runs_reap(now=later) == NOTHING  # a busy queue is not a lost message
        assert not _lost_message_events(run).exists()

        for lost in (1, 2):
            _purge(private_queue)  # the broker restarted without persistence
            later += timedelta(seconds=601)
            assert training_runs_reap(now=later) == NOTHING | {"requeued": 1}
            assert _lost_message_events(run).count() == lost

        _purge(private_queue)
        later += timedelta(seconds=601)
        assert training_runs_reap(now=later) == NOTHING | {"failed": 1}
    finally:
        _purge(private_queue)

    run = TrainingRun.objects.get(pk=run.pk)
    assert run.status == RunStatus.FAILED
    assert "queue message lost" in run.error_message and run.celery_task_id in run.error_message
    failed = RunEvent.objects.get(run=run, to_status=RunStatus.FAILED)
    assert failed.from_status == RunStatus.QUEUED and "giving up after 2" in failed.reason
