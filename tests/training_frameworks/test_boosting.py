"""What is particular to XGBoost and LightGBM: rounds as epochs, the best rounds kept, native files."""

import importlib
import json
import pickle
import sys
import textwrap

import numpy as np
import pytest

from apps.frameworks import ArtifactError, NoGpuAvailable, UnsafeArtifact, get_adapter, load_trained
from apps.frameworks.artifacts import file_sha256
from apps.frameworks import gpu_available
from apps.frameworks.discovery import reset_catalog

from .support import TINY_PARAMS, RecordingReporter, make_data

BOOSTERS = ["xgboost", "lightgbm"]
MODEL_FILES = {"xgboost": "model.ubj", "lightgbm": "model.txt"}
OVERFITTING = {
    "xgboost": {"n_estimators": 300, "learning_rate": 0.5, "max_depth": 4, "patience": 3},
    "lightgbm": {"n_estimators": 300, "learning_rate": 0.5, "num_leaves": 15, "min_child_samples": 3, "patience": 3},
}
pytestmark = pytest.mark.parametrize("framework", BOOSTERS)


def _fit(framework, kind="binary", *, params=None, data=None, reporter=None, **kwargs):
    return get_adapter(framework).fit(
        data=data or make_data(kind),
        task="regression" if kind == "regression" else "classification",
        model_type="gradient_boosting",
        seed=3,
        params=TINY_PARAMS[(framework, "gradient_boosting")] if params is None else params,
        reporter=reporter or RecordingReporter(),
        **kwargs,
    )


def _reseal(directory, model_file):
    meta = json.loads((directory / "meta.json").read_text())
    meta["model_sha256"] = file_sha256(directory / model_file)
    (directory / "meta.json").write_text(json.dumps(meta))


def test_early_stopping_keeps_the_best_rounds_and_the_loaded_model_is_that_model(framework, tmp_path):
    data = make_data("regression", noise_target=True)
    reporter = RecordingReporter()
    trained = _fit(framework, "regression", params=OVERFITTING[framework], data=data, reporter=reporter)
    val_loss = [m["val_loss"] for _, _, m in reporter.epochs]
    best = int(np.argmin(val_loss)) + 1
    assert trained.best_epoch == best < trained.epochs_trained == best + 3
    assert trained.describe()["boosted_rounds"] == best  # one round per epoch by default
    assert any("restored the trees of epoch" in message for _, message in reporter.logs)
    restored = trained.evaluate(data.X_val, data.y_val)
    assert restored["rmse"] == pytest.approx(reporter.epochs[best - 1][2]["val_rmse"], rel=1e-6)

    get_adapter(framework).save(trained, tmp_path)
    loaded = load_trained(tmp_path)
    np.testing.assert_array_equal(loaded.predict(data.X_test), trained.predict(data.X_test))
    assert json.loads((tmp_path / "meta.json").read_text())["boosted_rounds"] == best


def test_an_epoch_is_rounds_per_epoch_boosting_rounds(framework):
    reporter = RecordingReporter()
    params = TINY_PARAMS[(framework, "gradient_boosting")] | {"n_estimators": 10, "rounds_per_epoch": 4, "patience": 50}
    trained = _fit(framework, params=params, reporter=reporter)
    assert [(e, total) for e, total, _ in reporter.epochs] == [(1, 3), (2, 3), (3, 3)]  # rounds 4, 8 and 10
    assert trained.describe()["boosted_rounds"] == {1: 4, 2: 8, 3: 10}[trained.best_epoch]


def test_a_run_cancelled_before_its_first_round_has_nothing_to_predict_or_save(framework, tmp_path):
    reporter = RecordingReporter("cancelled", stop_after_checks=0)
    trained = _fit(framework, reporter=reporter)
    assert trained.stopped_reason == "cancelled" and trained.epochs_trained == 0 and reporter.epochs == []
    with pytest.raises(RuntimeError, match="before its first epoch"):
        trained.predict(make_data("binary").X_test)
    with pytest.raises(ValueError, match="nothing to save"):
        get_adapter(framework).save(trained, tmp_path)


def test_a_class_missing_from_the_training_split_still_gets_its_probability_column(framework):
    data = make_data("multiclass")
    keep = data.y_train != 1
    data.X_train, data.y_train, data.groups_train = data.X_train[keep], data.y_train[keep], data.groups_train[keep]
    trained = _fit(framework, "multiclass", data=data)
    proba = trained.predict_proba(data.X_test)
    assert proba.shape == (data.X_test.shape[0], 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert proba[:, 1].max() < 0.01  # never seen in training: (almost) never predicted


def test_the_saved_model_is_the_librarys_native_format_not_a_pickle(fitted, framework, tmp_path):
    trained, _ = fitted(framework, "gradient_boosting", "multiclass")
    get_adapter(framework).save(trained, tmp_path)
    blob = (tmp_path / MODEL_FILES[framework]).read_bytes()
    assert blob[:1] != b"\x80" and b"pickle" not in blob
    if framework == "xgboost":
        import xgboost

        assert blob[:1] == b"{"  # a UBJSON object: binary, so not JSON text
        with pytest.raises(ValueError):
            json.loads(blob)
        assert xgboost.Booster(model_file=str(tmp_path / "model.ubj")).num_features() == 6
    else:
        text = blob.decode()
        assert text.startswith("tree\nversion=") and "num_class=3" in text


def test_a_pickle_in_place_of_the_model_file_is_refused(fitted, framework, tmp_path):
    trained, _ = fitted(framework, "gradient_boosting", "binary")
    get_adapter(framework).save(trained, tmp_path)
    (tmp_path / MODEL_FILES[framework]).write_bytes(pickle.dumps({"booster": "anything"}))
    _reseal(tmp_path, MODEL_FILES[framework])
    with pytest.raises(UnsafeArtifact, match="is a Python pickle"):
        load_trained(tmp_path)


def test_a_model_file_changed_after_saving_is_refused(fitted, framework, tmp_path):
    trained, _ = fitted(framework, "gradient_boosting", "regression")
    get_adapter(framework).save(trained, tmp_path)
    path = tmp_path / MODEL_FILES[framework]
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match="does not match the sha256"):
        get_adapter(framework).load(tmp_path)


def test_bytes_that_are_not_a_model_of_the_library_are_refused(fitted, framework, tmp_path):
    trained, _ = fitted(framework, "gradient_boosting", "regression")
    get_adapter(framework).save(trained, tmp_path)
    for junk in (b"\x00" * 64, b"{" + b"\x01" * 63, b"tree\nnot really a model\n"):
        (tmp_path / MODEL_FILES[framework]).write_bytes(junk)
        _reseal(tmp_path, MODEL_FILES[framework])
        with pytest.raises(UnsafeArtifact, match="is not a"):
            get_adapter(framework).load(tmp_path)


def test_a_model_file_for_other_features_or_classes_is_refused(framework, tmp_path):
    adapter = get_adapter(framework)
    adapter.save(_fit(framework, data=make_data("binary", n_features=4)), tmp_path / "four")
    adapter.save(_fit(framework, "multiclass"), tmp_path / "three-classes")
    adapter.save(_fit(framework), tmp_path / "binary")
    model_file = MODEL_FILES[framework]
    (tmp_path / "binary" / model_file).write_bytes((tmp_path / "four" / model_file).read_bytes())
    _reseal(tmp_path / "binary", model_file)
    with pytest.raises(ArtifactError, match="trained on 4 features; meta.json says 6"):
        adapter.load(tmp_path / "binary")
    (tmp_path / "three-classes" / model_file).write_bytes((tmp_path / "four" / model_file).read_bytes())
    meta = json.loads((tmp_path / "three-classes" / "meta.json").read_text())
    (tmp_path / "three-classes" / "meta.json").write_text(json.dumps(meta | {"n_features": 4}))
    _reseal(tmp_path / "three-classes", model_file)
    with pytest.raises(ArtifactError, match="meta.json describes 3 classes"):
        adapter.load(tmp_path / "three-classes")


@pytest.mark.skipif(gpu_available("xgboost") or gpu_available("lightgbm"), reason="this host has a GPU")
def test_a_gpu_run_on_this_host_is_refused_before_training_naming_the_library(framework):
    reporter = RecordingReporter()
    with pytest.raises(NoGpuAvailable, match=rf"asked for a GPU .* none visible to {framework} .*-Q gpu"):
        _fit(framework, device="gpu", reporter=reporter)
    assert reporter.epochs == [] and get_adapter(framework).supports_gpu is True


def test_a_gpu_run_trains_on_the_gpu_and_loads_back_on_the_cpu(framework, tmp_path):
    if not gpu_available(framework):
        pytest.skip(f"{framework} sees no GPU here")
    data = make_data("binary")
    trained = _fit(framework, data=data, device="gpu")
    assert trained.device == {"xgboost": "cuda", "lightgbm": "gpu"}[framework]
    get_adapter(framework).save(trained, tmp_path)
    on_cpu = load_trained(tmp_path)
    np.testing.assert_allclose(on_cpu.predict_proba(data.X_test), trained.predict_proba(data.X_test), atol=1e-4)


PLUGINS = {
    # Another booster through build(): only the native parameters change.
    "xgboost": """
        from apps.training.plugins import ModelType, ParamSpec

        class TeamDart(ModelType):
            framework = "xgboost"
            name = "team_dart"
            params = {"rate_drop": ParamSpec("float", 0.2, 0.0, 1.0)}

            def build(self, *, task, params, n_features, n_outputs, window, seed):
                return {"booster": "dart", "rate_drop": params["rate_drop"], "max_depth": 3}
    """,
    # Its own loop: the model is build()'s parameter dict, fit() returns the Booster.
    "lightgbm": """
        import lightgbm as lgb
        from apps.training.plugins import ModelType, ParamSpec

        class TeamLoop(ModelType):
            framework = "lightgbm"
            name = "team_loop"
            params = {"rounds": ParamSpec("int", 5, 1, 100)}

            def build(self, *, task, params, n_features, n_outputs, window, seed):
                return {"num_leaves": 7, "min_data_in_leaf": 5, "learning_rate": 0.3}

            def fit(self, model, ctx):
                train = ctx.splits["train"]
                booster = lgb.Booster(params=model, train_set=lgb.Dataset(train.inputs(), label=train.targets()))
                for epoch in range(1, ctx.params["rounds"] + 1):
                    if ctx.should_stop():
                        break
                    booster.update()
                    ctx.report_epoch(epoch, ctx.params["rounds"], booster)
                return booster
    """,
}


@pytest.fixture
def plugin(framework, tmp_path, monkeypatch, settings):
    name = f"team_{framework}_types"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PLUGINS[framework]))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    importlib.invalidate_caches()
    settings.MODEL_TYPE_PLUGINS = [*settings.MODEL_TYPE_PLUGINS, name]
    reset_catalog()
    yield {"xgboost": "team_dart", "lightgbm": "team_loop"}[framework]
    sys.modules.pop(name, None)
    reset_catalog()


def test_a_plugin_model_type_trains_saves_and_loads_like_the_built_in_one(framework, plugin, tmp_path):
    adapter = get_adapter(framework)
    assert plugin in adapter.model_types
    data = make_data("multiclass")
    reporter = RecordingReporter()
    params = {"n_estimators": 6} if framework == "xgboost" else {"rounds": 4}
    trained = adapter.fit(data=data, task="classification", model_type=plugin, params=params, seed=1, reporter=reporter)
    assert len(reporter.epochs) == trained.epochs_trained == (6 if framework == "xgboost" else 4)
    assert trained.best_epoch is not None
    adapter.save(trained, tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["plugin"]["module"] == f"team_{framework}_types" and meta["model_type"] == plugin
    loaded = load_trained(tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(data.X_test), trained.predict_proba(data.X_test))
