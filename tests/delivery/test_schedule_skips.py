"""A schedule retrains only when the data or the training settings changed, unless forced."""

import pytest

from apps.training.choices import RunStatus
from apps.training.models import TrainingRun, TrainingSchedule
from apps.training.services.schedules import experiment_retrain_scheduled, training_schedule_save
from apps.training.services.training_pipeline import training_run_execute
from tests.training import factories

pytestmark = pytest.mark.usefixtures("inline_runs")


def _schedule(experiment, **fields):
    defaults = {"name": "hourly", "experiment": experiment, "kind": "interval", "every": 1, "unit": "hours"}
    return training_schedule_save(schedule=TrainingSchedule(**(defaults | fields)))


def _tick(schedule, tick, **kwargs):
    return experiment_retrain_scheduled(
        experiment_id=schedule.experiment_id, schedule_id=schedule.pk, tick=tick, **kwargs
    )


def _succeed(run):
    run = training_run_execute(run_id=run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    return run


def test_unchanged_data_skips_the_retrain_and_says_why_until_forced(price_experiment):
    schedule = _schedule(price_experiment)
    first = _succeed(_tick(schedule, "t1"))

    assert _tick(schedule, "t2") is None
    schedule.refresh_from_db()
    assert schedule.last_tick_outcome == "skipped" and schedule.last_tick_run == first
    assert f"unchanged since run {first.pk}" in schedule.last_tick_reason

    forced = _tick(schedule, "t3", force=True)
    assert forced is not None and forced.pk != first.pk
    schedule.refresh_from_db()
    assert (schedule.last_tick_outcome, schedule.last_tick_reason, schedule.last_tick_run) == (
        "started",
        "forced",
        forced,
    )


def test_the_force_next_flag_retrains_once_and_is_cleared_by_that_tick(price_experiment):
    schedule = _schedule(price_experiment)
    _succeed(_tick(schedule, "t1"))
    schedule.force_next = True
    training_schedule_save(schedule=schedule)
    _succeed(_tick(schedule, "t2"))
    schedule.refresh_from_db()
    assert not schedule.force_next
    assert _tick(schedule, "t3") is None and TrainingRun.objects.count() == 2


def test_a_new_dataset_version_or_changed_settings_retrain(price_experiment, price_data):
    schedule = _schedule(price_experiment)
    _succeed(_tick(schedule, "t1"))
    factories.price_version_add(dataset=price_data[0])
    on_new_data = _tick(schedule, "t2")
    assert on_new_data is not None and on_new_data.dataset_version.version == 2
    _succeed(on_new_data)
    assert _tick(schedule, "t3") is None
    schedule.params = {"alpha": 0.5}
    training_schedule_save(schedule=schedule)
    assert _tick(schedule, "t4") is not None


def test_the_tick_api_forces_for_staff_and_refuses_analysts(price_experiment, staff_api, analyst_api, outsider_api):
    schedule = _schedule(price_experiment)
    _succeed(_tick(schedule, "t1"))
    url = f"/api/v1/delivery/schedules/{schedule.pk}/tick"
    assert analyst_api.post(url, {"force": True}, format="json").status_code == 403
    assert outsider_api.post(url, {}, format="json").status_code == 403
    skipped = staff_api.post(url, {}, format="json")
    assert skipped.status_code == 200 and skipped.json()["outcome"] == "skipped" and skipped.json()["run"] is None
    forced = staff_api.post(url, {"force": True}, format="json")
    assert forced.status_code == 201 and forced.json()["outcome"] == "started"
    assert staff_api.post(url, {"force": "maybe"}, format="json").json().get("force")
    assert staff_api.post("/api/v1/delivery/schedules/999999/tick", {}, format="json").status_code == 404
