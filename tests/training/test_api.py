"""REST API for experiments and runs: who may do what, and 400s that name the field."""

import pytest

from apps.training.choices import RunStatus
from apps.training.models import Experiment, TrainingRun
from apps.training.services.training_pipeline import training_run_execute

from .conftest import start_inline

pytestmark = pytest.mark.usefixtures("inline_runs")


def _experiment_body(price_data, **overrides):
    dataset, _, spec = price_data
    return {
        "name": "api-direction",
        "dataset": dataset.pk,
        "feature_spec": spec.pk,
        "default_framework": "torch",
        "default_model_type": "mlp",
        "default_params": {"epochs": 2},
    } | overrides


def test_ml_staff_create_experiments_with_defaults_from_the_dataset_and_spec(staff_api, price_data):
    response = staff_api.post("/api/v1/experiments/", _experiment_body(price_data), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["target"], body["task"], body["primary_metric"], body["metric_direction"]) == (
        "direction",
        "classification",
        "accuracy",
        "maximize",
    )
    assert body["default_params"]["epochs"] == 2 and body["default_params"]["hidden_size"] == 32


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"primary_metric": "rmse"}, "primary_metric"),
        ({"primary_metric": "accuracy", "metric_direction": "minimize"}, "metric_direction"),
        ({"default_params": {"epochs": -1}}, "default_params"),
        ({"default_framework": "jax"}, "default_framework"),
        ({"dataset": 999999}, "dataset"),
        ({"name": "has spaces"}, "name"),
    ],
)
def test_bad_experiments_are_refused_naming_the_field(staff_api, price_data, overrides, field):
    response = staff_api.post("/api/v1/experiments/", _experiment_body(price_data, **overrides), format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert not Experiment.objects.exists()


def test_a_feature_spec_of_another_dataset_is_refused(staff_api, price_data):
    from tests.training.factories import diabetes_dataset

    _, _, other_spec = diabetes_dataset()
    response = staff_api.post(
        "/api/v1/experiments/", _experiment_body(price_data, feature_spec=other_spec.pk), format="json"
    )
    assert response.status_code == 400 and "feature_spec" in response.json()


def test_who_may_read_and_who_may_write(price_experiment, analyst_api, outsider_api, anon_api):
    assert analyst_api.get("/api/v1/experiments/").status_code == 200
    assert analyst_api.get(f"/api/v1/experiments/{price_experiment.pk}/").status_code == 200
    assert analyst_api.get("/api/v1/runs/").status_code == 200
    assert analyst_api.get("/api/v1/frameworks/").status_code == 200
    assert (
        analyst_api.patch(f"/api/v1/experiments/{price_experiment.pk}/", {"seed": 3}, format="json").status_code == 403
    )
    assert analyst_api.post(f"/api/v1/experiments/{price_experiment.pk}/train", {}, format="json").status_code == 403
    for client, code in ((outsider_api, 403), (anon_api, 401)):
        assert client.get("/api/v1/runs/").status_code == code
        assert client.get("/api/v1/experiments/").status_code == code
    assert not TrainingRun.objects.exists()


def test_starting_a_run_with_bad_settings_is_a_400_naming_the_field(staff_api, price_experiment):
    url = "/api/v1/runs/"
    cases = [
        ({"experiment": price_experiment.pk, "framework": "torch", "params": {"epochs": 0}}, "params"),
        ({"experiment": price_experiment.pk, "framework": "torch", "model_type": "gpt"}, "model_type"),
        ({"experiment": price_experiment.pk, "framework": "sklearn", "device": "gpu"}, "device"),
        ({"experiment": price_experiment.pk, "seed": -1}, "seed"),
        ({"experiment": 999999}, "experiment"),
        ({"experiment": price_experiment.pk, "params": [1, 2]}, "params"),
    ]
    for body, field in cases:
        response = staff_api.post(url, body, format="json")
        assert response.status_code == 400 and field in response.json(), (body, response.content)
    assert not TrainingRun.objects.exists()


def test_an_idempotency_key_header_starts_one_run(staff_api, price_experiment):
    headers = {"HTTP_IDEMPOTENCY_KEY": "nightly-2026-11-26"}
    first = staff_api.post("/api/v1/runs/", {"experiment": price_experiment.pk}, format="json", **headers)
    second = staff_api.post("/api/v1/runs/", {"experiment": price_experiment.pk}, format="json", **headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"] and TrainingRun.objects.count() == 1


def test_logs_are_paged_by_sequence_number(analyst_api, price_experiment):
    run = training_run_execute(run_id=start_inline(price_experiment).pk)
    page = analyst_api.get(f"/api/v1/runs/{run.pk}/logs?after=0&limit=3").json()
    assert [line["seq"] for line in page["lines"]] == [1, 2, 3] and page["last_seq"] == 3
    rest = analyst_api.get(f"/api/v1/runs/{run.pk}/logs?after=3").json()
    assert [line["seq"] for line in rest["lines"]] == list(range(4, run.log_seq + 1))
    assert analyst_api.get(f"/api/v1/runs/{run.pk}/logs?after={run.log_seq}").json()["lines"] == []
    assert analyst_api.get(f"/api/v1/runs/{run.pk}/logs?after=x").status_code == 400
    epochs = analyst_api.get(f"/api/v1/runs/{run.pk}/epochs").json()
    assert epochs and {"train_loss", "val_accuracy"} <= set(epochs[-1]["metrics"])


def test_runs_are_filtered_and_cancelled_and_retried(staff_api, price_experiment):
    queued = start_inline(price_experiment)
    done = training_run_execute(run_id=start_inline(price_experiment).pk)
    assert [r["id"] for r in staff_api.get("/api/v1/runs/?status=succeeded").json()["results"]] == [done.pk]
    assert [r["id"] for r in staff_api.get("/api/v1/runs/?active=true").json()["results"]] == [queued.pk]
    assert staff_api.get("/api/v1/runs/?status=exploded").status_code == 400

    cancelled = staff_api.post(f"/api/v1/runs/{queued.pk}/cancel", {}, format="json")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == RunStatus.CANCELLED
    again = staff_api.post(f"/api/v1/runs/{done.pk}/cancel", {}, format="json")
    assert again.status_code == 409 and "already ended" in again.json()["detail"], again.json()
    retried = staff_api.post(f"/api/v1/runs/{queued.pk}/retry", format="json")
    assert retried.status_code == 201 and retried.json()["retry_of"] == queued.pk
    detail = staff_api.get(f"/api/v1/runs/{queued.pk}/").json()
    assert [e["to_status"] for e in detail["events"]] == ["queued", "cancelled"]


def test_the_frameworks_endpoint_describes_every_model_type(analyst_api):
    frameworks = {f["name"]: f for f in analyst_api.get("/api/v1/frameworks/").json()}
    assert set(frameworks) == {"torch", "keras", "sklearn", "xgboost", "lightgbm"}
    assert {"mlp", "lstm"} <= set(frameworks["torch"]["model_types"]) and not frameworks["sklearn"]["supports_gpu"]
    assert frameworks["torch"]["model_types"]["mlp"]["params"]["epochs"]["kind"] == "int"


def test_the_openapi_schema_documents_the_training_and_registry_endpoints(analyst_api):
    paths = analyst_api.get("/api/schema/?format=json").json()["paths"]
    for path in (
        "/api/v1/runs/",
        "/api/v1/runs/{id}/cancel",
        "/api/v1/runs/{id}/logs",
        "/api/v1/experiments/",
        "/api/v1/models/{name}/aliases/",
        "/api/v1/models/{name}/versions/{version}/",
    ):
        assert path in paths, path
