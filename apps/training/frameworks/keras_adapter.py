"""TensorFlow/Keras networks: the same MLP and LSTM as the torch adapter, trained with model.fit.

TensorFlow is imported on first use (it costs seconds), configured for this process's thread
budget and for deterministic ops. Models are saved as `.keras` with only built-in layers (no Lambda)
and loaded with `safe_mode=True` after the archive's config has been checked against an allowlist.
"""
from __future__ import annotations

import json
import os
import threading
import zipfile
from pathlib import Path

import numpy as np

from apps.training.metrics import REGRESSION

from .artifacts import library_versions, read_meta, write_meta
from .base import ArtifactError, FitContext, FrameworkAdapter, InvalidParameter, TrainedModel, UnsafeArtifact
from .devices import resolve_device, training_threads
from .neural import NEURAL_DESCRIPTIONS, NEURAL_MODEL_TYPES, EpochProgress

MODEL_FILE = "model.keras"
ARCHIVE_MEMBERS = {"config.json", "metadata.json", "model.weights.h5"}
# Every object a saved config may name; anything else (Lambda, custom classes) is refused.
ALLOWED_CLASSES = {
    "Functional", "InputLayer", "Dense", "Dropout", "LSTM", "DTypePolicy",
    "GlorotUniform", "Orthogonal", "Zeros", "Adam", "SparseCategoricalCrossentropy", "MeanSquaredError",
}
# Structural markers of the functional graph; they carry no module and build nothing callable.
GRAPH_MARKERS = {"__keras_tensor__", "__tuple__"}

_import_lock = threading.Lock()
_tf = None


def tf_module():
    """TensorFlow, imported once with thread limits and deterministic ops."""
    global _tf
    with _import_lock:
        if _tf is None:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            os.environ.setdefault("KERAS_BACKEND", "tensorflow")
            import tensorflow as tf

            threads = training_threads()
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
            except RuntimeError:
                pass  # the runtime was already initialised by other code in this process
            tf.config.experimental.enable_op_determinism()
            _tf = tf
    return _tf


def keras_module():
    tf_module()
    import keras

    return keras


def build_model(model_type: str, params: dict, n_features: int, n_outputs: int, window: int):
    keras = keras_module()
    layers = keras.layers
    if model_type == "lstm":
        inputs = keras.Input(shape=(window, n_features), name="window")
        x = inputs
        for i in range(params["num_layers"]):
            x = layers.LSTM(params["hidden_size"], return_sequences=i < params["num_layers"] - 1, name=f"lstm_{i}")(x)
            x = layers.Dropout(params["dropout"], name=f"dropout_{i}")(x)
    else:
        inputs = keras.Input(shape=(n_features,), name="features")
        x = inputs
        for i in range(params["num_layers"]):
            x = layers.Dense(params["hidden_size"], activation="relu", name=f"dense_{i}")(x)
            x = layers.Dropout(params["dropout"], name=f"dropout_{i}")(x)
    outputs = layers.Dense(n_outputs, name="head")(x)
    return keras.Model(inputs, outputs, name=model_type)


class KerasTrainedModel(TrainedModel):
    framework = "keras"

    def __init__(self, *, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    def _predict_batch(self, inputs: np.ndarray) -> np.ndarray:
        tf = tf_module()
        with tf.device(self.device):
            out = self.model(np.ascontiguousarray(inputs, dtype=np.float32), training=False)
            if self.task == REGRESSION:
                return (out.numpy()[:, 0].astype(np.float64) * self.target_std + self.target_mean).astype(np.float32)
            return tf.nn.softmax(out, axis=-1).numpy().astype(np.float32)


class KerasAdapter(FrameworkAdapter):
    name = "keras"
    supports_gpu = True
    model_types = NEURAL_MODEL_TYPES
    descriptions = NEURAL_DESCRIPTIONS
    recurrent_model_types = frozenset({"lstm"})

    def fit(self, *, data, task, model_type, params=None, seed=0, device="cpu", reporter=None, monitor=None):
        ctx = self.begin_fit(data=data, task=task, model_type=model_type, params=params, seed=seed,
                             reporter=reporter, monitor=monitor)
        tf_device = resolve_device(device, framework=self.name)
        ctx.log(f"keras {model_type} ({task}) on {tf_device}: {len(ctx.splits['train'])} train examples, "
                f"{len(ctx.splits['val'])} val examples, {ctx.n_features} features, window {ctx.window}")
        keras = keras_module()
        # Seeds python, numpy's global generator and TF at once (the worker process is ours).
        keras.utils.set_random_seed(ctx.seed)
        with tf_module().device(tf_device):
            return self._train(ctx, keras, tf_device)

    def _train(self, ctx: FitContext, keras, tf_device: str) -> KerasTrainedModel:
        p = ctx.params
        n_outputs = 1 if ctx.task == REGRESSION else ctx.n_classes
        model = build_model(ctx.model_type, p, ctx.n_features, n_outputs, ctx.window)
        optimizer = keras.optimizers.Adam(
            learning_rate=p["learning_rate"], weight_decay=p["weight_decay"] or None,
            global_clipnorm=p.get("grad_clip") or None,
        )
        if ctx.task == REGRESSION:
            loss = keras.losses.MeanSquaredError()
        else:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(optimizer=optimizer, loss=loss, jit_compile=False)
        train = ctx.splits["train"]
        y = train.targets()
        if ctx.task == REGRESSION:
            y = ((y - ctx.target_mean) / ctx.target_std).astype(np.float32)
        trained = KerasTrainedModel(
            model=model, model_type=ctx.model_type, task=ctx.task, params=p, n_features=ctx.n_features,
            window=ctx.window, classes=ctx.classes, n_classes=ctx.n_classes, feature_names=ctx.feature_names,
            target_mean=ctx.target_mean, target_std=ctx.target_std, device=tf_device, history=ctx.history,
            monitor=ctx.monitor,
        )
        progress = EpochProgress(
            ctx, outputs=lambda split: trained.batched_outputs(split.inputs()),
            snapshot=model.get_weights, restore=model.set_weights,
        )
        callback = progress_callback(ctx, progress)
        model.fit(train.inputs(), y, batch_size=p["batch_size"], epochs=p["epochs"], shuffle=True, verbose=0,
                  callbacks=[callback])
        trained.epochs_trained = progress.epochs_done
        progress.finish(callback.reason)
        trained.stopped_reason = callback.reason
        trained.best_epoch = progress.best_epoch
        return trained

    def save(self, trained, directory):
        if not isinstance(trained, KerasTrainedModel):
            raise TypeError(f"the keras adapter cannot save a {type(trained).__name__}")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        trained.model.save(directory / MODEL_FILE)
        write_meta(directory, trained, model_file=MODEL_FILE,
                   libraries=library_versions("keras", "tensorflow"))

    def load(self, directory, *, device="cpu"):
        tf_device = resolve_device(device, framework=self.name)
        meta, path = read_meta(directory, framework=self.name, model_file=MODEL_FILE)
        try:
            params = self.validate_params(meta["model_type"], meta["params"])
        except (InvalidParameter, KeyError, TypeError) as exc:
            raise ArtifactError(f"meta.json does not describe a keras network: {exc}") from exc
        check_keras_archive(path)
        keras = keras_module()
        try:
            with tf_module().device(tf_device):
                model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:  # keras raises assorted types for a bad archive
            raise ArtifactError(f"{path.name} could not be loaded as a Keras model: {exc}") from exc
        expected_input = (None, params["window"], meta["n_features"]) if meta["model_type"] == "lstm" else (None, meta["n_features"])
        if tuple(model.input_shape) != expected_input:
            raise ArtifactError(f"{path.name} expects inputs {model.input_shape}, meta.json says {expected_input}")
        return KerasTrainedModel(model=model, **TrainedModel.common_kwargs(meta, tf_device))


def check_keras_archive(path: Path) -> None:
    """Refuse a .keras archive with unexpected members or objects outside ALLOWED_CLASSES."""
    try:
        with zipfile.ZipFile(path) as archive:
            extra = sorted(set(archive.namelist()) - ARCHIVE_MEMBERS)
            if extra:
                raise UnsafeArtifact(f"{path.name} holds unexpected files: {', '.join(extra)}")
            config = json.loads(archive.read("config.json"))
    except zipfile.BadZipFile as exc:
        raise UnsafeArtifact(f"{path.name} is not a .keras archive; refusing to load it") from exc
    except (KeyError, ValueError) as exc:
        raise UnsafeArtifact(f"{path.name} has no readable config.json: {exc}") from exc
    for module, class_name in _named_objects(config):
        allowed = class_name in GRAPH_MARKERS if module is None else (
            str(module).split(".")[0] == "keras" and class_name in ALLOWED_CLASSES)
        if not allowed:
            raise UnsafeArtifact(f"{path.name} refers to {module}.{class_name}, which is not an allowed Keras object")


def _named_objects(node):
    if isinstance(node, dict):
        if "class_name" in node:
            yield node.get("module"), node["class_name"]
        for value in node.values():
            yield from _named_objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _named_objects(value)


_callback_class = None


def progress_callback(ctx: FitContext, progress: EpochProgress):
    """A keras Callback (its class is defined on first use because keras is imported lazily)."""
    global _callback_class
    if _callback_class is None:
        keras = keras_module()

        class ProgressCallback(keras.callbacks.Callback):
            """Reports epochs, early-stops, and checks for cancellation after every batch."""

            def __init__(self, ctx: FitContext, progress: EpochProgress):
                super().__init__()
                self.ctx, self.progress, self.reason = ctx, progress, None

            def on_epoch_begin(self, epoch, logs=None):
                self._check_stop()

            def on_train_batch_end(self, batch, logs=None):
                self._check_stop()

            def _check_stop(self):
                if self.reason is None:
                    self.reason = self.ctx.should_stop()
                if self.reason:
                    self.model.stop_training = True

            def on_epoch_end(self, epoch, logs=None):
                # After a mid-epoch stop keras still calls this; that partial epoch is not reported.
                if self.reason is None and self.progress.end_epoch(epoch + 1):
                    self.model.stop_training = True

        _callback_class = ProgressCallback
    return _callback_class(ctx, progress)
