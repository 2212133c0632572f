"""Model types come from the built-ins, installed packages' entry points and MODEL_TYPE_PLUGINS."""

import io

import pytest
from django.core.management import call_command
from django.test import Client

from apps.frameworks import get_adapter
from apps.frameworks.discovery import catalog, plugin_errors
from apps.frameworks.model_types import plugin_provenance
from tests.training_frameworks.support import make_data

GOOD_PLUGIN = """
    from sklearn.linear_model import Ridge
    from apps.training.plugins import ModelType, ParamSpec

    class TeamRidge(ModelType):
        framework = "sklearn"
        name = "team_ridge"
        tasks = ("regression",)
        params = {"alpha": ParamSpec("float", 2.0, 0.01, 100.0, log=True)}

        def build(self, *, task, params, n_features, n_outputs, window, seed):
            return Ridge(alpha=params["alpha"])
"""


def test_the_example_package_is_found_through_its_entry_point(fresh_catalog):
    found = catalog()
    assert {("torch", "tcn"), ("sklearn", "rbf_kernel_linear"), ("sklearn", "sgd_linear")} <= set(found.types)
    provenance = plugin_provenance(found.get("torch", "tcn"))
    assert provenance["package"] == "portal-example-models" and provenance["package_version"] == "0.1.0"
    assert len(provenance["code_sha256"]) == 64
    # The built-ins come through the same interface.
    assert plugin_provenance(found.get("sklearn", "linear"))["package"] == "mlops-portal"
    assert plugin_errors() == []


def test_the_api_lists_plugin_model_types_like_built_in_ones(fresh_catalog, analyst_api):
    response = analyst_api.get("/api/v1/frameworks/")
    assert response.status_code == 200
    frameworks = {f["name"]: f for f in response.json()}
    assert {"torch", "keras", "sklearn", "xgboost", "lightgbm"} <= set(frameworks)
    tcn = frameworks["torch"]["model_types"]["tcn"]
    assert tcn["recurrent"] is True and tcn["plugin"]["package"] == "portal-example-models"
    # A plugin type that uses the torch loop gets the loop's parameters; its own override wins.
    assert {"channels", "window", "learning_rate", "batch_size"} <= set(tcn["params"])
    assert tcn["params"]["epochs"]["default"] == 15
    sgd = frameworks["sklearn"]["model_types"]["sgd_linear"]
    assert sgd["own_loop"] is True and set(sgd["params"]) == {"epochs", "batch_size", "alpha", "eta0", "patience"}


def test_a_module_named_in_settings_is_a_plugin_source(plugin_module):
    plugin_module("team_models_ok", GOOD_PLUGIN)
    adapter = get_adapter("sklearn")
    assert adapter.model_types["team_ridge"]["alpha"].default == 2.0
    trained = adapter.fit(data=make_data("regression"), task="regression", model_type="team_ridge", params={})
    assert trained.epochs_trained == 1 and trained.estimator.alpha == 2.0


def test_a_type_refuses_a_task_it_does_not_declare(plugin_module):
    from apps.frameworks import InvalidParameter

    plugin_module("team_models_ok", GOOD_PLUGIN)
    with pytest.raises(InvalidParameter, match="team_ridge supports regression only"):
        get_adapter("sklearn").fit(data=make_data("binary"), task="classification", model_type="team_ridge")


def test_a_plugin_that_fails_to_import_is_reported_and_the_rest_keeps_working(plugin_module, staff_user, client):
    plugin_module("team_models_broken", "import a_library_nobody_installed\n")
    plugin_module("team_models_ok", GOOD_PLUGIN)
    errors = [str(e) for e in plugin_errors()]
    assert len(errors) == 1 and "team_models_broken" in errors[0] and "a_library_nobody_installed" in errors[0]
    # Everything else is still there and trains.
    assert {"linear", "team_ridge", "sgd_linear"} <= set(get_adapter("sklearn").model_types)
    assert get_adapter("sklearn").fit(data=make_data("regression"), task="regression", model_type="linear")

    ready = client.get("/readyz").json()
    assert ready["status"] in ("ok", "unavailable")
    assert "team_models_broken" in ready["model_type_plugins"][0]
    assert "database" not in ready.get("failing", [])

    admin = Client()
    admin.force_login(staff_user)
    page = admin.get("/admin/").content.decode()
    assert "Model-type plugin not loaded" in page and "a_library_nobody_installed" in page

    out, err = io.StringIO(), io.StringIO()
    call_command("train", "--list-model-types", stdout=out, stderr=err)
    assert "sklearn/team_ridge" in out.getvalue() and "torch/tcn" in out.getvalue()
    assert "team_models_broken" in err.getvalue()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            """
        from apps.training.plugins import ModelType
        class Bad(ModelType):
            framework = "sklearn"
            name = "Has Spaces"
            def build(self, **kw): ...
     """,
            "name must be a lowercase identifier",
        ),
        (
            """
        from apps.training.plugins import ModelType, ParamSpec
        class Bad(ModelType):
            framework = "sklearn"
            name = "windowed"
            uses_history = True
            params = {"window": ParamSpec("int", 3, 2, 9)}
            def build(self, **kw): ...
     """,
            "sklearn models cannot use history windows",
        ),
        (
            """
        from apps.training.plugins import ModelType
        class Bad(ModelType):
            framework = "jax"
            name = "thing"
            def build(self, **kw): ...
     """,
            "framework must be one of",
        ),
        (
            """
        from apps.training.plugins import ModelType
        class Bad(ModelType):
            framework = "sklearn"
            name = "linear"
            def build(self, **kw): ...
     """,
            "sklearn/linear is already provided by apps.frameworks.builtin",
        ),
        (
            """
        from apps.training.plugins import ModelType
        class Bad(ModelType):
            framework = "torch"
            name = "no_build"
     """,
            "implement build()",
        ),
    ],
)
def test_a_malformed_model_type_is_reported_and_skipped(plugin_module, source, message):
    plugin_module("team_models_bad", source)
    errors = [str(e) for e in plugin_errors()]
    assert len(errors) == 1 and message in errors[0], errors
    assert get_adapter("sklearn").model_types["linear"]  # the built-in is untouched
