"""A saved model names the plugin code that built it; loading refuses another; nothing unsafe is saved."""

import pytest

from apps.frameworks import PluginUnavailable, UnsafeArtifact, get_adapter, load_trained
from tests.deployments.conftest import SCALE_SPEC, classification_frame, record, train_version
from tests.training_frameworks.support import make_data

from .sources import TEAM_LOGIT


def _saved(tmp_path, model_type="team_logit"):
    adapter = get_adapter("sklearn")
    trained = adapter.fit(data=make_data("binary"), task="classification", model_type=model_type)
    adapter.save(trained, tmp_path / "model")
    return tmp_path / "model"


def test_a_saved_model_records_the_plugin_and_loads_while_the_code_is_unchanged(plugin_module, tmp_path):
    plugin_module("team_logit_mod", TEAM_LOGIT)
    folder = _saved(tmp_path)
    import json

    plugin = json.loads((folder / "meta.json").read_text())["plugin"]
    assert plugin["module"] == "team_logit_mod" and plugin["model_type"] == "team_logit"
    assert load_trained(folder).estimator.C == 1.0


def test_a_model_whose_plugin_is_uninstalled_is_refused_with_its_name(plugin_module, tmp_path, settings):
    from apps.frameworks.discovery import reset_catalog

    plugin_module("team_logit_mod", TEAM_LOGIT)
    folder = _saved(tmp_path)
    settings.MODEL_TYPE_PLUGINS = []
    reset_catalog()
    with pytest.raises(
        PluginUnavailable,
        match=r"sklearn/team_logit \(plugin module team_logit_mod \(code [0-9a-f]{12}\)\) is not installed",
    ):
        load_trained(folder)


def test_a_model_whose_plugin_code_changed_is_refused_naming_both_versions(plugin_module, tmp_path):
    path = plugin_module("team_logit_mod", TEAM_LOGIT)
    folder = _saved(tmp_path)
    plugin_module("team_logit_mod", TEAM_LOGIT.replace('C=params["c"]', 'C=params["c"] * 2'))
    assert path.read_text() != TEAM_LOGIT
    with pytest.raises(
        PluginUnavailable,
        match=r"changed since this model was trained: it was trained with "
        r"module team_logit_mod \(code [0-9a-f]{12}\), this host has "
        r"module team_logit_mod \(code [0-9a-f]{12}\)",
    ):
        load_trained(folder)


def test_serving_answers_503_naming_the_plugin_when_its_code_changed(
    plugin_module, fresh_serving_state, inline_runs, staff_user, staff_api
):
    from apps.deployments.services.model_deployment_service import deployment_create

    plugin_module("team_logit_mod", TEAM_LOGIT)
    version = train_version(
        dataset_name="plugin-cls",
        frame=classification_frame(),
        task="classification",
        target="label",
        spec=SCALE_SPEC,
        model_name="team-direction",
        user=staff_user,
        model_type="team_logit",
    )
    assert version.plugin["module"] == "team_logit_mod" and version.model_type == "team_logit"
    deployment_create(name="team-direction", model_version=version, user=staff_user)
    url = "/api/v1/deployments/team-direction/predict"
    assert staff_api.post(url, {"dataframe_records": [record()]}, format="json").status_code == 200

    plugin_module("team_logit_mod", TEAM_LOGIT + "    # a later release\n")
    fresh_serving_state.reset()
    response = staff_api.post(url, {"dataframe_records": [record()]}, format="json")
    assert response.status_code == 503
    assert "sklearn/team_logit changed since this model was trained" in response.json()["detail"]
    v2 = staff_api.post(
        "/v2/models/team-direction/infer",
        {"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [v]} for n, v in record().items()]},
        format="json",
    )
    assert v2.status_code == 503 and "changed since this model was trained" in v2.json()["error"]


LAMBDA_PLUGIN = """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from apps.training.plugins import ModelType

    class Sneaky(ModelType):
        framework = "sklearn"
        name = "sneaky"

        def build(self, *, task, params, n_features, n_outputs, window, seed):
            return make_pipeline(FunctionTransformer(lambda x: x * 2), LogisticRegression())
"""


def test_a_plugin_model_that_only_pickle_could_save_fails_its_run_and_registers_nothing(
    plugin_module, staff_user, inline_runs
):
    from apps.registry.models import ModelVersion
    from apps.training.models import TrainingRun

    plugin_module("sneaky_mod", LAMBDA_PLUGIN)
    with pytest.raises(AssertionError):
        train_version(
            dataset_name="sneaky-cls",
            frame=classification_frame(),
            task="classification",
            target="label",
            spec=SCALE_SPEC,
            model_name="sneaky",
            user=staff_user,
            model_type="sneaky",
        )
    run = TrainingRun.objects.get(model_type="sneaky")
    assert run.status == "failed" and "not trusted: sneaky_mod.<lambda>" in run.error_message
    assert not run.artifact_uri and not ModelVersion.objects.filter(training_run=run).exists()


def test_the_same_plugin_model_cannot_be_saved_directly_either(plugin_module, tmp_path):
    plugin_module("sneaky_mod", LAMBDA_PLUGIN)
    with pytest.raises(UnsafeArtifact, match="lambdas and local functions can never be loaded"):
        _saved(tmp_path, "sneaky")
    assert not (tmp_path / "model").exists()


KERAS_PLUGIN = """
    import keras
    from apps.training.plugins import ModelType, ParamSpec

    class Scale(keras.layers.Layer):
        def __init__(self, factor=1.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return super().get_config() | {"factor": self.factor}

    class ScaledDense(ModelType):
        framework = "keras"
        name = "scaled_dense"
        params = {"units": ParamSpec("int", 4, 1, 64)}
        custom_objects = (Scale,) if DECLARED else ()

        def build(self, *, task, params, n_features, n_outputs, window, seed):
            inputs = keras.Input(shape=(n_features,))
            x = keras.layers.Dense(params["units"], activation="relu")(Scale(0.5)(inputs))
            return keras.Model(inputs, keras.layers.Dense(n_outputs)(x))
"""


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "undeclared"])
def test_a_keras_plugin_loads_only_the_custom_layers_it_declares(plugin_module, tmp_path, declared):
    import numpy as np

    plugin_module("keras_team_mod", f"DECLARED = {declared}\n" + KERAS_PLUGIN.replace("\n    ", "\n").lstrip())
    adapter = get_adapter("keras")
    data = make_data("regression")
    trained = adapter.fit(data=data, task="regression", model_type="scaled_dense", params={"epochs": 1})
    if not declared:
        with pytest.raises(UnsafeArtifact, match="keras_team_mod.Scale, which is not an allowed Keras object"):
            adapter.save(trained, tmp_path / "model")
        return
    adapter.save(trained, tmp_path / "model")
    loaded = adapter.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(data.X_test), trained.predict(data.X_test))


def test_a_challenger_whose_plugin_changed_answers_503_while_the_champion_keeps_serving(
    plugin_module, fresh_serving_state, inline_runs, staff_user, staff_api
):
    from apps.deployments.services.model_deployment_service import deployment_create
    from apps.deployments.services.traffic import deployment_set_traffic

    plugin_module("team_logit_mod", TEAM_LOGIT)
    champion = train_version(
        dataset_name="plugin-cls-a",
        frame=classification_frame(seed=2),
        task="classification",
        target="label",
        spec=SCALE_SPEC,
        model_name="team-direction",
        user=staff_user,
    )
    challenger = train_version(
        dataset_name="plugin-cls-b",
        frame=classification_frame(seed=3),
        task="classification",
        target="label",
        spec=SCALE_SPEC,
        model_name="team-direction",
        user=staff_user,
        model_type="team_logit",
    )
    deployment = deployment_create(name="team-direction", model_version=champion, user=staff_user)
    deployment_set_traffic(
        deployment=deployment,
        user=staff_user,
        allocations=[{"model_version": champion, "weight": 50}, {"model_version": challenger, "weight": 50}],
    )
    plugin_module("team_logit_mod", TEAM_LOGIT + "    # a later release\n")
    fresh_serving_state.reset()

    answers = [
        staff_api.post(
            "/api/v1/deployments/team-direction/predict",
            {"dataframe_records": [record()]},
            format="json",
            HTTP_X_ROUTING_KEY=f"client-{i}",
        )
        for i in range(30)
    ]
    served = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 503]
    assert len(served) + len(refused) == 30 and served and refused
    assert {a.json()["model_version"] for a in served} == {str(champion.version)}
    assert all(
        f"{challenger} of deployment 'team-direction' cannot be loaded" in a.json()["detail"]
        and "sklearn/team_logit changed since this model was trained" in a.json()["detail"]
        for a in refused
    )
    # Each refusal is the challenger's server error, so its error rate (and the rollout gates) see it.
    from apps.monitoring.models import PredictionLog
    from apps.monitoring.services.logbuffer import prediction_logs_flush

    prediction_logs_flush()
    errors = PredictionLog.objects.filter(model_version=challenger, status="server_error")
    assert errors.count() == len(refused) and "changed since this model was trained" in errors.first().error
    assert PredictionLog.objects.filter(model_version=champion, status="ok").count() == len(served)


def test_a_load_failure_that_may_pass_is_retried_instead_of_marking_the_version_unavailable(
    fresh_serving_state, inline_runs, staff_user
):
    from apps.deployments.serving.state import ModelUnavailable, ServingState, _load_model
    from apps.deployments.services.model_deployment_service import deployment_create

    version = train_version(
        dataset_name="flaky-cls",
        frame=classification_frame(),
        task="classification",
        target="label",
        spec=SCALE_SPEC,
        model_name="flaky",
        user=staff_user,
    )
    deployment_create(name="flaky", model_version=version, user=staff_user)
    failures = [OSError("storage timed out")]

    def flaky_loader(mv):
        if failures:
            raise failures.pop()
        return _load_model(mv)

    state = ServingState(loader=flaky_loader)
    with pytest.raises(ModelUnavailable, match="storage timed out"):
        state.table("flaky")
    table = state.table("flaky")  # nothing was cached: the next request loads it
    assert set(table.versions) == {version.pk} and table.unavailable == {}
