"""Housekeeping (log flush, reaper, gates, study keeper, schedule ticks, cleanup) has a queue and a
worker of its own, so two long training runs never starve it."""

import json
import re
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from apps.training import conf
from apps.training.choices import RUN_TERMINAL, RunOrigin, RunStatus
from apps.training.models import TrainingRun, TrainingSchedule
from apps.training.services.runs import RunStateError, run_status_transition
from apps.training.services.schedules import training_schedule_save
from apps.training.services.training_pipeline import _dispatch, training_run_request_stop
from tests.conftest import ROOT

from .conftest import start_inline
from .waiting import wait_for, wait_for_epoch, wait_for_run

# 1,000 one-tree epochs: far longer than the test needs the training slots busy (it cancels them).
LONG = {"max_iter": 1000, "stage_size": 1, "patience": 1000, "min_samples_leaf": 5}


def procfile_workers() -> dict[str, dict]:
    """{Procfile name: {"queues": set, "concurrency": int}} of every `celery worker` line, with
    `${VAR:-default}` read as its default."""
    workers = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if " worker " not in command or "celery" not in command:
            continue
        command = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", command)
        queues = re.search(r"-Q\s+(\S+)", command)[1].split(",")
        concurrency = re.search(r"-c\s+(\d+)", command)
        workers[name.strip()] = {"queues": set(queues), "concurrency": int(concurrency[1]) if concurrency else 1}
    return workers


def test_the_procfile_runs_housekeeping_and_training_in_workers_of_their_own():
    workers = procfile_workers()
    training = {conf.get("TRAINING_CPU_QUEUE"), conf.get("TRAINING_GPU_QUEUE")}
    assert django_settings.HOUSEKEEPING_QUEUE in workers["housekeeping"]["queues"]
    assert "default" in workers["housekeeping"]["queues"], "a task routed nowhere still runs, beside housekeeping"
    assert workers["housekeeping"]["queues"].isdisjoint(training)
    for name, worker in workers.items():
        if name != "housekeeping":
            assert worker["queues"] <= training, f"{name} consumes {worker['queues']}: training queues only"


def test_every_beat_task_and_every_task_but_training_goes_to_the_housekeeping_queue(db):
    from django_celery_beat.models import PeriodicTask

    from mlops_portal.celery import app

    rows = list(PeriodicTask.objects.values_list("task", "queue"))
    assert {
        "monitoring.flush_prediction_logs",
        "training.reap_stale_runs",
        "deployments.evaluate_rollouts",
        "tuning.keep_studies",
        "training.remove_orphaned_folders",
    } <= {task for task, _ in rows}
    assert {queue for _, queue in rows} == {"housekeeping"}, rows

    app.loader.import_default_modules()
    ours = {name for name in app.tasks if not name.startswith("celery.")}
    # Scoring a delivery candidate loads and runs models like training: sent to the training cpu queue.
    assert ours - set(django_settings.HOUSEKEEPING_TASKS) == {"training.run", "delivery.evaluate_candidate"}, (
        "a new task needs a route"
    )
    for name in django_settings.HOUSEKEEPING_TASKS:
        assert app.amqp.router.route({}, name)["queue"].name == "housekeeping", name


@pytest.fixture
def private_queues(settings):
    """Private stand-ins for the Procfile's queue names: the suite's own worker consumes the real
    ones, and must not do this test's housekeeping for it."""
    names = {queue: f"{queue}-{uuid.uuid4().hex[:8]}" for queue in ("cpu", "gpu", "default", "housekeeping")}
    settings.TRAINING_CPU_QUEUE = names["cpu"]
    return names


def _start_long(experiment):
    run = start_inline(experiment, framework="sklearn", model_type="gradient_boosting", params=LONG)
    _dispatch(run.pk, run.queue, run.celery_task_id)
    return run


def _lost_run(experiment):
    """A run whose worker died long ago on its last attempt: the reaper must end it FAILED."""
    run = start_inline(experiment)
    run_status_transition(
        run_id=run.pk,
        to=RunStatus.RUNNING,
        reason="attempt 3 on a host that is gone",
        fields={"attempts": run.max_attempts, "worker_host": "gone.example", "worker_pid": 1},
    )
    # Its last heartbeat, ten minutes ago (the reaper runs in the worker: no `now=` to pass it).
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    return run


@pytest.mark.worker
def test_housekeeping_keeps_reaping_and_ticking_while_both_training_slots_are_busy(
    worker_factory, price_experiment, private_queues, staff_user
):
    from mlops_portal.celery import app

    procfile = procfile_workers()
    env = {"TRAINING_CPU_QUEUE": private_queues["cpu"]}  # where the housekeeping worker dispatches new runs
    training = worker_factory(
        queues=",".join(private_queues[q] for q in sorted(procfile["worker"]["queues"])),
        concurrency=procfile["worker"]["concurrency"],
        extra_env=env,
    )
    worker_factory(
        queues=",".join(private_queues[q] for q in sorted(procfile["housekeeping"]["queues"])),
        concurrency=procfile["housekeeping"]["concurrency"],
        extra_env=env,
    )
    housekeeping_queue = private_queues[django_settings.HOUSEKEEPING_QUEUE]

    busy = [_start_long(price_experiment) for _ in range(procfile["worker"]["concurrency"])]
    for run in busy:
        wait_for_epoch(run, 2, timeout=120)
    assert {r.worker_pid for r in TrainingRun.objects.filter(pk__in=[r.pk for r in busy])} == set(training.child_pids())

    lost = _lost_run(price_experiment)
    schedule = training_schedule_save(
        schedule=TrainingSchedule(name="nightly", experiment=price_experiment, kind="cron", cron="30 2 * * *"),
        user=staff_user,
    )
    task = schedule.periodic_task
    sent = time.monotonic()
    # What beat sends when these are due, to the housekeeping queue.
    app.send_task("training.reap_stale_runs", queue=housekeeping_queue)
    app.send_task(task.task, kwargs=json.loads(task.kwargs), queue=housekeeping_queue)
    try:
        # Under the old layout (one worker on default+cpu, -c 2) the reaper still had not run after 120 s.
        reaped = wait_for(
            lambda: TrainingRun.objects.filter(pk=lost.pk, status=RunStatus.FAILED).first(),
            timeout=30,
            what="the reaper to end the lost run",
        )
        reaped_after = time.monotonic() - sent
        # The tick's first run start imports the frameworks in a cold pool process: give it longer.
        ticked = wait_for(
            lambda: TrainingRun.objects.filter(experiment=price_experiment, origin=RunOrigin.SCHEDULE).first(),
            timeout=60,
            what="the schedule tick to start its run",
        )
        ticked_after = time.monotonic() - sent
        still = {r.pk: (r.status, r.current_epoch) for r in TrainingRun.objects.filter(pk__in=[r.pk for r in busy])}
        assert all(status == RunStatus.RUNNING for status, _ in still.values()), still
        assert "no heartbeat" in reaped.error_message or "worker lost" in reaped.error_message
        assert ticked.status == RunStatus.QUEUED, "it waits for a training slot, as it should"
        print(f"with both training slots busy: reaped after {reaped_after:.1f}s, tick's run after {ticked_after:.1f}s")
    finally:
        for run in TrainingRun.objects.filter(experiment=price_experiment).exclude(status__in=RUN_TERMINAL):
            try:
                training_run_request_stop(run=run)
            except RunStateError:
                pass  # ended meanwhile
        for run in busy:
            wait_for_run(run, timeout=60)
