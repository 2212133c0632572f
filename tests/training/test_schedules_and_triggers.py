"""Beat ticks and new dataset versions start runs through the same path as manual ones."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from apps.training.choices import RunStatus
from apps.training.models import TrainingRun, TrainingSchedule
from apps.training.services.runs import run_status_transition
from apps.training.services.schedules import (
    experiment_retrain_scheduled,
    training_schedule_delete,
    training_schedule_save,
)

from . import factories

pytestmark = pytest.mark.usefixtures("inline_runs")


def _schedule(experiment, **fields):
    defaults = {"name": "hourly", "experiment": experiment, "kind": "interval", "every": 1, "unit": "hours"}
    return training_schedule_save(schedule=TrainingSchedule(**(defaults | fields)))


def test_a_schedule_keeps_its_beat_task_in_step(price_experiment):
    schedule = _schedule(price_experiment)
    task = schedule.periodic_task
    assert (task.interval.every, task.interval.period, task.queue) == (1, "hours", "housekeeping")
    schedule.kind, schedule.cron, schedule.enabled = "cron", "15 3 * * *", False
    training_schedule_save(schedule=schedule)
    task.refresh_from_db()
    assert task.interval is None and task.crontab.minute == "15" and not task.enabled
    training_schedule_delete(schedule=schedule)
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"kind": "cron", "cron": "* * *"}, "cron"),
        ({"kind": "cron", "cron": "0 25 * * *"}, "cron"),
        ({"every": 0}, "every"),
        ({"framework": "torch", "model_type": "mlp", "params": {"epochs": 0}}, "params"),
    ],
)
def test_bad_schedules_are_refused_naming_the_field(price_experiment, fields, field):
    with pytest.raises(ValidationError) as exc:
        _schedule(price_experiment, **fields)
    assert field in exc.value.message_dict
    assert not TrainingSchedule.objects.exists()


def test_one_tick_starts_one_run_and_the_next_waits_until_it_ends(price_experiment):
    schedule = _schedule(price_experiment, framework="sklearn", model_type="linear")
    first = experiment_retrain_scheduled(experiment_id=price_experiment.pk, schedule_id=schedule.pk, tick="t1")
    assert first.origin == "schedule" and (first.framework, first.model_type) == ("sklearn", "linear")
    # The same tick delivered twice, and a second tick while the first run is active: nothing new.
    assert experiment_retrain_scheduled(experiment_id=price_experiment.pk, schedule_id=schedule.pk, tick="t1") == first
    assert experiment_retrain_scheduled(experiment_id=price_experiment.pk, schedule_id=schedule.pk, tick="t2") is None
    run_status_transition(run_id=first.pk, to=RunStatus.CANCELLED)
    second = experiment_retrain_scheduled(experiment_id=price_experiment.pk, schedule_id=schedule.pk, tick="t3")
    assert second.pk != first.pk
    schedule.enabled = False
    training_schedule_save(schedule=schedule)
    run_status_transition(run_id=second.pk, to=RunStatus.CANCELLED)
    assert experiment_retrain_scheduled(experiment_id=price_experiment.pk, schedule_id=schedule.pk, tick="t4") is None
    assert TrainingRun.objects.count() == 2


def test_a_new_dataset_version_retrains_the_experiments_that_ask_for_it(price_data, staff_user):
    from apps.datasets.models import DatasetVersion
    from apps.datasets.signals import dataset_version_created

    dataset, _, spec = price_data
    eager = factories.experiment(dataset=dataset, spec=spec, name="eager", retrain_on_new_data=True)
    factories.experiment(dataset=dataset, spec=spec, name="lazy")
    version = factories.price_version_add(dataset=dataset)
    # h1 sends this on commit of the upload; the test transaction never commits, so send it as h1 does.
    dataset_version_created.send(sender=DatasetVersion, version=version)
    dataset_version_created.send(sender=DatasetVersion, version=version)

    run = TrainingRun.objects.get()
    assert (run.experiment, run.dataset_version, run.origin) == (eager, version, "dataset")


def test_the_train_command_trains_inline_and_reports_the_registered_version(price_experiment, capsys):
    call_command(
        "train", "--experiment", price_experiment.name, "--framework", "sklearn", "--model-type", "linear", "--inline"
    )
    out = capsys.readouterr().out
    run = TrainingRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED and run.origin == "cli"
    assert f"run {run.pk} succeeded" in out and f"registered {price_experiment.name} version 1" in out
    assert "    1 INFO" in out


def test_the_train_command_names_what_is_wrong(price_experiment):
    with pytest.raises(CommandError, match="No experiment named 'nope'"):
        call_command("train", "--experiment", "nope")
    with pytest.raises(CommandError, match="params"):
        call_command(
            "train", "--experiment", price_experiment.name, "--framework", "torch", "--params", '{"epochs": 0}'
        )
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("train", "--experiment", price_experiment.name, "--params", "{oops")
