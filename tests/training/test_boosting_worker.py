"""XGBoost and LightGBM end to end on the real Celery worker: API → worker → native model file → registry."""

import pandas as pd
import pytest

from apps.registry.loading import load_model_version
from apps.training.choices import RunStatus
from apps.frameworks import gpu_available
from apps.training.models import TrainingRun

from .waiting import wait_for_run

pytestmark = pytest.mark.worker

FAST = {
    "xgboost": {"n_estimators": 12, "max_depth": 3, "learning_rate": 0.3},
    "lightgbm": {"n_estimators": 12, "num_leaves": 7, "min_child_samples": 5, "learning_rate": 0.3},
}


@pytest.mark.parametrize("framework", ["xgboost", "lightgbm"])
def test_a_boosting_run_on_the_worker_ends_as_a_version_that_loads_and_predicts_as_trained(
    celery_worker, price_experiment, staff_api, framework
):
    response = staff_api.post(
        "/api/v1/runs/",
        {
            "experiment": price_experiment.pk,
            "framework": framework,
            "model_type": "gradient_boosting",
            "params": FAST[framework],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["queue"] == "cpu"

    run = wait_for_run(TrainingRun.objects.get(pk=response.json()["id"]), timeout=150)
    assert run.status == RunStatus.SUCCEEDED, f"{framework}: {run.error_message}"
    assert run.epochs.exists() and run.log_lines.filter(message__startswith=f"{framework} gradient_boosting").exists()
    version = run.model_versions.get()
    assert version.framework == framework and version.model_type == "gradient_boosting"
    loaded = load_model_version(version)
    example = loaded.input_example
    assert example and example["predictions"], "the worker stored what the in-memory model predicted"
    predictions, labels = loaded.predict_raw(pd.DataFrame(example["rows"]))
    assert predictions == example["predictions"] and labels == example["labels"]


@pytest.mark.skipif(gpu_available("xgboost"), reason="this host has a GPU XGBoost can use")
def test_an_xgboost_gpu_run_goes_to_the_gpu_queue_and_fails_clearly_on_a_worker_without_one(
    celery_worker, price_experiment, staff_api
):
    response = staff_api.post(
        "/api/v1/runs/",
        {
            "experiment": price_experiment.pk,
            "framework": "xgboost",
            "model_type": "gradient_boosting",
            "device": "gpu",
            "params": FAST["xgboost"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["queue"] == "gpu"
    run = wait_for_run(TrainingRun.objects.get(pk=response.json()["id"]), timeout=60)
    assert run.status == RunStatus.FAILED
    assert "asked for a GPU" in run.error_message and "visible to xgboost" in run.error_message
    assert not run.model_versions.exists()
