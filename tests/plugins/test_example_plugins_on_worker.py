"""The example plugin package end to end on the real worker, Redis and PostgreSQL.

Train now (API) → live epochs and logs → registered version recording the plugin → deployment →
predictions equal to what the in-memory model predicted right after training; and a tuning study
over a plugin's own hyperparameters.
"""

import sys
import textwrap

import numpy as np
import pytest

from apps.training.choices import RunStatus
from apps.training.models import TrainingRun
from apps.tuning.choices import StudyStatus, TrialStatus
from apps.tuning.services import study_create
from tests.training import factories
from tests.training.waiting import wait_for_run
from tests.tuning.conftest import wait_for_study

from .sources import TEAM_LOGIT

pytestmark = pytest.mark.worker

EXAMPLES = [
    # (framework, model type, params, epochs it must report)
    ("torch", "tcn", {"epochs": 2, "channels": 4, "levels": 2, "window": 3, "patience": 5}, 2),
    ("sklearn", "rbf_kernel_linear", {"n_components": 20}, 1),
    ("sklearn", "sgd_linear", {"epochs": 3, "patience": 10}, 3),
]


def test_each_example_plugin_goes_from_train_now_to_served_predictions_of_the_trained_model(
    celery_worker, fresh_serving_state, staff_user, staff_api, analyst_api
):
    dataset, _, spec = factories.price_dataset(user=staff_user)
    experiment = factories.experiment(dataset=dataset, spec=spec, name="plugin-direction", user=staff_user)
    run_ids = []
    for framework, model_type, params, _ in EXAMPLES:
        response = staff_api.post(
            "/api/v1/runs/",
            {"experiment": experiment.pk, "framework": framework, "model_type": model_type, "params": params},
            format="json",
        )
        assert response.status_code == 201, response.content
        run_ids.append(response.json()["id"])

    for run_id, (framework, model_type, params, epochs) in zip(run_ids, EXAMPLES):
        run = wait_for_run(TrainingRun.objects.get(pk=run_id), timeout=180)
        assert run.status == RunStatus.SUCCEEDED, f"{model_type}: {run.error_message}"
        assert run.epochs.count() == epochs and run.total_epochs == epochs
        messages = list(run.log_lines.values_list("message", flat=True))
        assert any(f"{framework} {model_type} (classification)" in m for m in messages), messages[:5]
        logs = analyst_api.get(f"/api/v1/runs/{run_id}/logs").json()["lines"]
        assert [line["seq"] for line in logs] == list(range(1, run.log_seq + 1))

        version = run.model_versions.get()
        assert (version.framework, version.model_type) == (framework, model_type)
        assert version.plugin["package"] == "portal-example-models" and version.plugin["package_version"] == "0.1.0"
        name = f"plugin-{model_type.replace('_', '-')}"
        created = staff_api.post("/api/v1/deployments/", {"name": name, "model_version_id": version.pk}, format="json")
        assert created.status_code == 201, created.content

        example = _input_example(version)
        answer = staff_api.post(
            f"/api/v1/deployments/{name}/predict",
            {"dataframe_records": example["rows"], "params": {"probabilities": True}},
            format="json",
        )
        assert answer.status_code == 200, answer.content
        assert answer.json()["predictions"] == example["predictions"], model_type
        # The served model is the trained one, not merely one that agrees on a couple of labels.
        np.testing.assert_allclose(answer.json()["probabilities"], example["probabilities"], rtol=1e-5, atol=1e-6)


def _input_example(version) -> dict:
    from apps.registry.loading import load_model_version

    example = load_model_version(version).input_example
    assert example and example["predictions"], "the worker stored what the in-memory model predicted"
    return example


def test_a_study_over_a_plugins_own_parameters_registers_its_best(celery_worker, staff_user):
    dataset, _, spec = factories.diabetes_dataset(user=staff_user)
    experiment = factories.experiment(
        dataset=dataset,
        spec=spec,
        name="plugin-diabetes",
        model_type="rbf_kernel_linear",
        params={"n_components": 20},
        user=staff_user,
    )
    space = [
        {"name": "gamma", "type": "float", "low": 0.001, "high": 1.0, "log": True},
        {"name": "alpha", "type": "float", "low": 0.01, "high": 10.0, "log": True},
    ]
    study = study_create(
        name="plugin-kernel",
        experiment=experiment,
        model_type="rbf_kernel_linear",
        search_space=space,
        fixed_params={"n_components": 20},
        strategy="bayesian",
        strategy_options={"n_initial_points": 2},
        max_trials=4,
        parallelism=2,
        user=staff_user,
        start=True,
    )

    study = wait_for_study(study, timeout=180)

    assert study.status == StudyStatus.COMPLETED
    trials = list(study.trials.select_related("run"))
    assert len(trials) == 4 and all(t.status == TrialStatus.COMPLETED for t in trials)
    assert len({(t.params["gamma"], t.params["alpha"]) for t in trials}) == 4
    best = min(trials, key=lambda t: t.value)  # rmse: lower is better
    version = study.model_version
    assert version.training_run_id == best.run_id and version.model_type == "rbf_kernel_linear"
    assert version.params["gamma"] == best.params["gamma"] and version.params["n_components"] == 20
    assert version.plugin["package"] == "portal-example-models"


# The same throwaway plugin as the provenance tests, as a file the worker imports.
TEAM_MODEL = textwrap.dedent(TEAM_LOGIT)


def test_a_version_trained_on_the_worker_is_refused_where_its_plugin_code_differs(
    worker_factory, settings, tmp_path, monkeypatch, fresh_serving_state, fresh_catalog, staff_user, staff_api
):
    from apps.frameworks.discovery import reset_catalog

    (tmp_path / "team_plugin.py").write_text(TEAM_MODEL)
    # A worker of its own with the plugin on its path, on a queue of its own.
    settings.TRAINING_CPU_QUEUE = "plugin-provenance"
    worker_factory(
        queues="plugin-provenance", extra_env={"PYTHONPATH": str(tmp_path), "MODEL_TYPE_PLUGINS": "team_plugin"}
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    settings.MODEL_TYPE_PLUGINS = ["team_plugin"]
    reset_catalog()

    dataset, _, spec = factories.price_dataset(user=staff_user)
    experiment = factories.experiment(
        dataset=dataset, spec=spec, name="team-direction", model_type="team_logit", params={}, user=staff_user
    )
    response = staff_api.post("/api/v1/runs/", {"experiment": experiment.pk}, format="json")
    assert response.status_code == 201, response.content
    run = wait_for_run(TrainingRun.objects.get(pk=response.json()["id"]), timeout=120)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    version = run.model_versions.get()
    assert version.plugin["module"] == "team_plugin"
    assert (
        staff_api.post(
            "/api/v1/deployments/", {"name": "team-direction", "model_version_id": version.pk}, format="json"
        ).status_code
        == 201
    )
    rows = _input_example(version)["rows"]
    url = "/api/v1/deployments/team-direction/predict"
    assert staff_api.post(url, {"dataframe_records": rows}, format="json").status_code == 200

    # This web process now runs other code under the same name (a later release of the plugin).
    (tmp_path / "team_plugin.py").write_text(TEAM_MODEL.replace('C=params["c"]', 'C=params["c"] / 2'))
    sys.modules.pop("team_plugin", None)
    reset_catalog()
    fresh_serving_state.reset()
    refused = staff_api.post(url, {"dataframe_records": rows}, format="json")
    assert refused.status_code == 503
    assert "model type sklearn/team_logit changed since this model was trained" in refused.json()["detail"]

    # And where the plugin is not installed at all.
    settings.MODEL_TYPE_PLUGINS = []
    reset_catalog()
    fresh_serving_state.reset()
    missing = staff_api.post(url, {"dataframe_records": rows}, format="json")
    assert missing.status_code == 503
    assert "sklearn/team_logit (plugin module team_plugin" in missing.json()["detail"]
    assert "is not installed on this host" in missing.json()["detail"]
