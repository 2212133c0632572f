"""End to end on the real Celery worker, Redis and PostgreSQL: Train now → worker → artifact → registry."""

import json

import pandas as pd
import pytest
from django.test import Client
from django.urls import reverse

from apps.registry.loading import load_model_version
from apps.training.choices import RunStatus
from apps.training.models import TrainingRun

from . import factories
from .waiting import wait_for, wait_for_epoch, wait_for_run

pytestmark = pytest.mark.worker


def _assert_loaded_model_answers_as_the_trained_one(run):
    version = run.model_versions.get()
    loaded = load_model_version(version)
    example = loaded.input_example
    assert example and example["predictions"], "the worker stored what the in-memory model predicted"
    predictions, labels = loaded.predict_raw(pd.DataFrame(example["rows"]))
    assert predictions == example["predictions"]
    assert labels == example["labels"]
    return version


def test_train_now_in_admin_takes_each_framework_to_a_loadable_version(celery_worker, price_data, staff_user):
    dataset, _, spec = price_data
    experiments = [
        factories.experiment(
            dataset=dataset, spec=spec, name=f"admin-{framework}", framework=framework, model_type=model_type
        )
        for framework, model_type in (("torch", "mlp"), ("keras", "mlp"), ("sklearn", "gradient_boosting"))
    ]
    client = Client()
    client.force_login(staff_user)
    url = reverse("admin:training_experiment_changelist")
    ids = [str(e.pk) for e in experiments]

    form_page = client.post(url, {"action": "train_now", "_selected_action": ids})
    assert form_page.status_code == 200 and b"Queue training" in form_page.content
    response = client.post(url, {"action": "train_now", "_selected_action": ids, "apply": "1"}, follow=True)
    assert response.status_code == 200 and b"Queued" in response.content

    runs = list(TrainingRun.objects.filter(experiment__in=experiments).order_by("pk"))
    assert [r.origin for r in runs] == ["admin"] * 3 and {r.created_by for r in runs} == {staff_user}
    for run in runs:
        run = wait_for_run(run, timeout=150)
        assert run.status == RunStatus.SUCCEEDED, f"{run.framework}: {run.error_message}"
        assert run.worker_pid and run.celery_task_id
        assert run.epochs.exists() and run.log_lines.count() >= 4
        version = _assert_loaded_model_answers_as_the_trained_one(run)
        assert version.framework == run.framework and version.registered_model.name == run.experiment.name


def test_the_api_starts_runs_that_end_as_registered_versions(celery_worker, price_experiment, staff_api, analyst_api):
    started = []
    # Keras goes through the admin test above; here a recurrent model and a baseline.
    for framework, model_type in (("torch", "lstm"), ("sklearn", "linear")):
        response = staff_api.post(
            "/api/v1/runs/",
            {
                "experiment": price_experiment.pk,
                "framework": framework,
                "model_type": model_type,
                "params": factories.fast_params(framework, model_type),
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        assert response.json()["status"] == "queued" and response.json()["queue"] == "cpu"
        started.append(response.json()["id"])
    # Analysts watch but do not start runs.
    assert analyst_api.post("/api/v1/runs/", {"experiment": price_experiment.pk}, format="json").status_code == 403

    for run_id in started:
        run = wait_for_run(TrainingRun.objects.get(pk=run_id), timeout=150)
        assert run.status == RunStatus.SUCCEEDED, f"{run.framework}: {run.error_message}"
        _assert_loaded_model_answers_as_the_trained_one(run)
        detail = analyst_api.get(f"/api/v1/runs/{run_id}/").json()
        assert detail["model_versions"] == [
            {"model": price_experiment.name, "version": detail["model_versions"][0]["version"]}
        ]
        logs = analyst_api.get(f"/api/v1/runs/{run_id}/logs?after=2").json()
        assert [line["seq"] for line in logs["lines"]] == list(range(3, run.log_seq + 1))
    versions = analyst_api.get(f"/api/v1/models/{price_experiment.name}/versions/").json()["results"]
    assert sorted(v["version"] for v in versions) == [1, 2]


def test_cancelling_a_running_run_stops_it_at_the_next_boundary(celery_worker, price_experiment, staff_api):
    response = staff_api.post(
        f"/api/v1/experiments/{price_experiment.pk}/train",
        {
            "framework": "torch",
            "model_type": "mlp",
            "params": {"epochs": 500, "patience": 500, "hidden_size": 8},
        },
        format="json",
    )
    run = TrainingRun.objects.get(pk=response.json()["id"])
    wait_for_epoch(run, 2)

    cancel = staff_api.post(f"/api/v1/runs/{run.pk}/cancel", {}, format="json")
    assert cancel.status_code == 202 and cancel.json()["stop_requested"] == "cancelled"

    run = wait_for_run(run, timeout=30)
    assert run.status == RunStatus.CANCELLED and run.stop_reason == "cancelled"
    assert run.current_epoch < 500 and not run.model_versions.exists()
    assert run.log_lines.filter(message__contains="stopped: cancelled").exists()
    assert staff_api.post(f"/api/v1/runs/{run.pk}/cancel", {}, format="json").status_code == 409


def test_a_gpu_run_on_a_worker_without_a_gpu_fails_with_a_clear_message(celery_worker, price_experiment, staff_api):
    response = staff_api.post(
        "/api/v1/runs/",
        {
            "experiment": price_experiment.pk,
            "framework": "torch",
            "model_type": "mlp",
            "device": "gpu",
            "params": factories.fast_params("torch", "mlp"),
        },
        format="json",
    )
    assert response.json()["queue"] == "gpu"
    run = wait_for_run(TrainingRun.objects.get(pk=response.json()["id"]), timeout=60)
    assert run.status == RunStatus.FAILED
    assert "asked for a GPU" in run.error_message and "-Q gpu" in run.error_message
    assert run.attempts == 1 and not run.model_versions.exists()


def test_a_schedule_tick_retrains_the_experiment_on_the_newest_data(celery_worker, price_experiment, staff_user):
    from mlops_portal.celery import app

    from apps.training.models import TrainingSchedule
    from apps.training.services.schedules import training_schedule_save

    newest = factories.price_version_add(dataset=price_experiment.dataset)
    schedule = training_schedule_save(
        schedule=TrainingSchedule(name="nightly", experiment=price_experiment, kind="cron", cron="30 2 * * *"),
        user=staff_user,
    )
    task = schedule.periodic_task
    # Exactly what beat sends when the crontab is due.
    app.send_task(task.task, args=json.loads(task.args or "[]"), kwargs=json.loads(task.kwargs), queue=task.queue)

    run = wait_for(
        lambda: TrainingRun.objects.filter(experiment=price_experiment, origin="schedule").first(),
        timeout=30,
        what="the scheduled run",
    )
    run = wait_for_run(run, timeout=90)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert run.dataset_version == newest and run.model_versions.exists()
