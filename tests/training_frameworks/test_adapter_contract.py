"""The contract every framework adapter keeps, run for each (framework, model_type, task)."""

import json

import numpy as np
import pytest

from apps.frameworks import get_adapter, load_trained
from apps.frameworks.metrics import metric_names

from .support import COMBO_IDS, COMBOS, task_of

pytestmark = pytest.mark.parametrize(("framework", "model_type", "kind"), COMBOS, ids=COMBO_IDS)


def test_it_reports_train_and_val_metrics_for_every_epoch(fitted, framework, model_type, kind):
    trained, reporter = fitted(framework, model_type, kind)
    task = task_of(kind)
    assert reporter.epochs, "no epoch was reported"
    assert [e for e, _, _ in reporter.epochs] == list(range(1, len(reporter.epochs) + 1))
    assert all(total == reporter.epochs[0][1] for _, total, _ in reporter.epochs)
    expected = {"train_loss", "val_loss"} | {f"val_{m}" for m in metric_names(task) if m not in ("loss", "log_loss")}
    for _, _, metrics in reporter.epochs:
        assert expected <= set(metrics), expected - set(metrics)
        assert all(np.isfinite(v) for v in metrics.values())
    assert trained.epochs_trained == len(reporter.epochs)
    assert trained.stopped_reason is None
    assert 1 <= trained.best_epoch <= trained.epochs_trained
    assert reporter.logs and reporter.logs[0][0] == "INFO"


def test_it_predicts_one_value_per_row_with_history(fitted, datasets, framework, model_type, kind):
    trained, _ = fitted(framework, model_type, kind)
    data = datasets[kind]
    predictions = trained.predict(data.X_test, data.groups_test)
    _, rows = trained.input_rows(data.X_test, data.groups_test)
    # Every entity loses its first window-1 rows (no history) and nothing else.
    assert predictions.shape == (data.X_test.shape[0] - 2 * (trained.window - 1),)
    assert rows.shape == predictions.shape and np.all(np.diff(rows) > 0)
    if kind == "regression":
        assert predictions.dtype == np.float32 and np.isfinite(predictions).all()
        with pytest.raises(TypeError):
            trained.predict_proba(data.X_test, data.groups_test)
    else:
        n_classes = len(data.classes)
        proba = trained.predict_proba(data.X_test, data.groups_test)
        assert proba.shape == (predictions.shape[0], n_classes)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
        assert predictions.dtype == np.int64 and set(predictions) <= set(range(n_classes))
        np.testing.assert_array_equal(predictions, proba.argmax(axis=1))


def test_it_predicts_ready_made_windows_like_rows(fitted, datasets, framework, model_type, kind):
    trained, _ = fitted(framework, model_type, kind)
    data = datasets[kind]
    inputs, _ = trained.input_rows(data.X_val, data.groups_val)
    windows = inputs.reshape(inputs.shape[0], trained.window, trained.n_features)
    np.testing.assert_allclose(trained.predict(windows), trained.predict(data.X_val, data.groups_val), rtol=1e-6)
    with pytest.raises(ValueError, match="feature columns"):
        trained.predict(data.X_val[:, :3])


def test_a_loaded_model_predicts_exactly_like_the_trained_one(fitted, datasets, framework, model_type, kind, tmp_path):
    trained, _ = fitted(framework, model_type, kind)
    data = datasets[kind]
    adapter = get_adapter(framework)
    adapter.save(trained, tmp_path / "model")
    loaded = adapter.load(tmp_path / "model", device="cpu")
    np.testing.assert_array_equal(
        loaded.predict(data.X_test, data.groups_test), trained.predict(data.X_test, data.groups_test)
    )
    if kind != "regression":
        np.testing.assert_array_equal(
            loaded.predict_proba(data.X_test, data.groups_test), trained.predict_proba(data.X_test, data.groups_test)
        )
    assert (loaded.window, loaded.task, loaded.classes) == (trained.window, trained.task, trained.classes)
    assert load_trained(tmp_path / "model").evaluate(data.X_test, data.y_test, data.groups_test) == trained.evaluate(
        data.X_test, data.y_test, data.groups_test
    )


def test_the_saved_directory_holds_a_safe_model_file_and_its_meta(fitted, framework, model_type, kind, tmp_path):
    trained, _ = fitted(framework, model_type, kind)
    get_adapter(framework).save(trained, tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    suffix = {"torch": ".safetensors", "keras": ".keras", "sklearn": ".skops", "xgboost": ".ubj", "lightgbm": ".txt"}[
        framework
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["meta.json", f"model{suffix}"])
    assert meta["framework"] == framework and meta["model_type"] == model_type
    assert meta["task"] == task_of(kind)
    assert meta["n_features"] == 6 and meta["feature_names"] == [f"f{i}" for i in range(6)]
    assert meta["window"] == trained.window == (4 if get_adapter(framework).model_type(model_type).uses_history else 1)
    assert meta["classes"] == ({"binary": ["down", "up"], "multiclass": ["sell", "hold", "buy"]}.get(kind))
    assert meta["params"] == get_adapter(framework).validate_params(model_type, meta["params"])
    library = {"torch": "torch", "keras": "keras", "sklearn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm"}[
        framework
    ]
    assert {"python", "numpy", library} <= set(meta["library_versions"])
