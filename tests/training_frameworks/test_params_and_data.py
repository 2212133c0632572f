"""Hyperparameter schemas and validation, and the checks on PreparedData before any training."""

import json

import numpy as np
import pytest

from apps.frameworks import FRAMEWORKS, InvalidParameter, get_adapter

from .support import RecordingReporter, make_data

MODEL_TYPES = {
    "torch": {"mlp", "lstm"},
    "keras": {"mlp", "lstm"},
    "sklearn": {"linear", "gradient_boosting"},
    "xgboost": {"gradient_boosting"},
    "lightgbm": {"gradient_boosting"},
}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_model_type_describes_its_params_with_kind_range_and_a_valid_default(framework):
    adapter = get_adapter(framework)
    # The built-in types; an installed plugin package (e.g. examples/portal-example-models) may add more.
    assert MODEL_TYPES[framework] <= set(adapter.model_types)
    described = json.loads(json.dumps(adapter.describe()))
    for model_type, specs in adapter.model_types.items():
        assert adapter.validate_params(model_type, {}) == adapter.defaults(model_type)
        for name, spec in specs.items():
            entry = described[model_type]["params"][name]
            assert entry["kind"] in ("int", "float", "choice", "bool")
            if spec.kind in ("int", "float"):
                assert entry["low"] <= entry["default"] <= entry["high"]
    assert described.get("lstm", {}).get("recurrent", True) is True


def test_it_names_an_unknown_parameter():
    with pytest.raises(InvalidParameter, match="hidden_units: is not a parameter of torch mlp") as caught:
        get_adapter("torch").validate_params("mlp", {"hidden_units": 4})
    assert caught.value.param == "hidden_units"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"epochs": 0}, "epochs: must be between 1 and 1000"),
        ({"learning_rate": "fast"}, "learning_rate: must be a number"),
        ({"batch_size": 12.5}, "batch_size: must be a whole number"),
        ({"dropout": True}, "dropout: must be a number"),
        ({"dropout": float("nan")}, "dropout: must be finite"),
    ],
)
def test_it_refuses_out_of_range_or_mistyped_values(params, message):
    with pytest.raises(InvalidParameter, match=message):
        get_adapter("keras").validate_params("mlp", params)


def test_it_accepts_whole_floats_for_int_params_as_search_strategies_send_them():
    params = get_adapter("torch").validate_params("lstm", {"hidden_size": 16.0, "window": np.int64(6)})
    assert params["hidden_size"] == 16 and isinstance(params["hidden_size"], int)
    assert params["window"] == 6 and isinstance(params["window"], int)


def test_it_refuses_an_unknown_model_type_and_framework():
    with pytest.raises(InvalidParameter, match="model_type: sklearn has no model type 'forest'"):
        get_adapter("sklearn").validate_params("forest", {})
    with pytest.raises(ValueError, match="framework must be one of"):
        get_adapter("catboost")


def _fit(data, *, framework="sklearn", model_type="linear", task="classification", params=None):
    return get_adapter(framework).fit(
        data=data, task=task, model_type=model_type, params=params or {}, seed=0, reporter=RecordingReporter()
    )


def test_it_rejects_features_with_nan_naming_the_split():
    data = make_data("binary")
    data.X_val = data.X_val.copy()
    data.X_val[3, 2] = np.nan
    with pytest.raises(ValueError, match="X_val contains NaN or infinite values"):
        _fit(data)


def test_it_rejects_a_training_split_with_a_single_class():
    data = make_data("binary")
    data.y_train = np.zeros_like(data.y_train)
    with pytest.raises(ValueError, match="y_train: classification needs at least two classes"):
        _fit(data)


def test_it_rejects_class_indices_beyond_the_declared_classes():
    data = make_data("binary")
    data.y_test = data.y_test.copy()
    data.y_test[0] = 5
    with pytest.raises(ValueError, match=r"y_test has class indices outside 0\.\.1"):
        _fit(data)


def test_it_rejects_an_empty_validation_split():
    data = make_data("regression")
    data.X_val, data.y_val, data.groups_val = data.X_val[:0], data.y_val[:0], data.groups_val[:0]
    with pytest.raises(ValueError, match="the val split is empty"):
        _fit(data, task="regression")


def test_it_rejects_a_window_longer_than_every_series():
    data = make_data("regression")  # 45 validation rows over two entities: 22 or 23 each
    with pytest.raises(ValueError, match="window: 30 rows is longer than every series in the val split"):
        _fit(data, framework="torch", model_type="lstm", task="regression", params={"window": 30, "epochs": 1})


def test_it_rejects_mismatched_feature_counts():
    data = make_data("regression")
    data.X_test = data.X_test[:, :4]
    with pytest.raises(ValueError, match="X_test has 4 features, X_train has 6"):
        _fit(data, task="regression")


def test_it_refuses_a_task_it_does_not_know():
    with pytest.raises(ValueError, match="task must be one of"):
        _fit(make_data("binary"), task="ranking")
