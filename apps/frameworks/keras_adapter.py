"""TensorFlow/Keras: trains any model type's keras.Model (built-in MLP and LSTM, or a plugin's own).

TensorFlow is imported on first use (it costs seconds), configured for this process's thread
budget and for deterministic ops. Models are saved as `.keras` and loaded with `safe_mode=True` after
the archive's config has been checked against an allowlist: the built-in layers below, the Keras
classes the model type lists in `trusted_types`, and its own `custom_objects` (no Lambda, ever).
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
from pathlib import Path

import numpy as np

from apps.frameworks.metrics import REGRESSION

from .artifacts import library_versions, read_meta, write_meta
from .base import FrameworkAdapter, TrainedModel
from .fitting import ArtifactError, FitContext, InvalidParameter, UnsafeArtifact
from .devices import training_threads
from .neural import NEURAL_LOOP_PARAMS, EpochProgress

MODEL_FILE = "model.keras"
ARCHIVE_MEMBERS = {"config.json", "metadata.json", "model.weights.h5"}
# Every object a saved config may name; anything else (Lambda, custom classes) is refused.
ALLOWED_CLASSES = {
    "Functional",
    "InputLayer",
    "Dense",
    "Dropout",
    "LSTM",
    "DTypePolicy",
    "GlorotUniform",
    "Orthogonal",
    "Zeros",
    "Adam",
    "SparseCategoricalCrossentropy",
    "MeanSquaredError",
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
    loop_params = NEURAL_LOOP_PARAMS
    cpu_device = "/CPU:0"
    gpu_device = "/GPU:0"

    def gpu_available(self) -> bool:
        return bool(tf_module().config.list_physical_devices("GPU"))

    def fit(self, *, data, task, model_type, params=None, seed=0, device="cpu", reporter=None, monitor=None):
        ctx = self.begin_fit(
            data=data, task=task, model_type=model_type, params=params, seed=seed, reporter=reporter, monitor=monitor
        )
        tf_device = self.resolve_device(device)
        ctx.device = tf_device
        ctx.log(
            f"keras {model_type} ({task}) on {tf_device}: {len(ctx.splits['train'])} train examples, "
            f"{len(ctx.splits['val'])} val examples, {ctx.n_features} features, window {ctx.window}"
        )
        keras = keras_module()
        # Seeds python, numpy's global generator and TF at once (the worker process is ours).
        keras.utils.set_random_seed(ctx.seed)
        with tf_module().device(tf_device):
            plugin = self.model_type(model_type)
            model = self._model(plugin, ctx.task, ctx.params, ctx.n_features, ctx.n_classes, ctx.window, ctx.seed)
            trained = KerasTrainedModel(model=model, **ctx.model_kwargs(device=tf_device))
            if plugin.own_loop:
                return self._own_loop(plugin, ctx, trained)
            return self._train(ctx, keras, trained)

    @staticmethod
    def _model(plugin, task, params, n_features, n_classes, window, seed):
        keras = keras_module()
        n_outputs = 1 if task == REGRESSION else int(n_classes)
        model = plugin.build(
            task=task, params=params, n_features=n_features, n_outputs=n_outputs, window=window, seed=seed
        )
        if not isinstance(model, keras.Model):
            raise TypeError(f"{plugin!r}.build() must return a keras.Model, got {type(model).__name__}")
        return model

    def _own_loop(self, plugin, ctx: FitContext, trained: KerasTrainedModel) -> KerasTrainedModel:
        def outputs_of(model, inputs):
            trained.model = model
            return trained.batched_outputs(inputs)

        ctx.outputs_of = outputs_of
        model = plugin.fit(trained.model, ctx)
        if not isinstance(model, keras_module().Model):
            raise TypeError(f"{plugin!r}.fit() must return the trained keras.Model, got {type(model).__name__}")
        trained.model = model
        vars(trained).update(ctx.own_loop_outcome())
        return trained

    def _train(self, ctx: FitContext, keras, trained: KerasTrainedModel) -> KerasTrainedModel:
        p = ctx.params
        model = trained.model
        optimizer = keras.optimizers.Adam(
            learning_rate=p["learning_rate"],
            weight_decay=p["weight_decay"] or None,
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
        progress = EpochProgress(
            ctx,
            outputs=lambda split: trained.batched_outputs(split.inputs()),
            snapshot=model.get_weights,
            restore=model.set_weights,
        )
        callback = progress_callback(ctx, progress)
        model.fit(
            train.inputs(),
            y,
            batch_size=p["batch_size"],
            epochs=p["epochs"],
            shuffle=True,
            verbose=0,
            callbacks=[callback],
        )
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
        # Refuse now what load would refuse (a Lambda's bytecode, an undeclared class), so no run
        # registers a version that can never be served.
        check_keras_archive(directory / MODEL_FILE, self.model_type(trained.model_type))
        write_meta(directory, trained, model_file=MODEL_FILE, libraries=library_versions("keras", "tensorflow"))

    def load(self, directory, *, device="cpu"):
        tf_device = self.resolve_device(device)
        meta, path = read_meta(directory, framework=self.name, model_file=MODEL_FILE)
        plugin = self.loaded_model_type(meta)
        try:
            params = self.validate_params(meta["model_type"], meta["params"])
        except (InvalidParameter, KeyError, TypeError) as exc:
            raise ArtifactError(f"meta.json does not describe a keras network: {exc}") from exc
        check_keras_archive(path, plugin)
        keras = keras_module()
        custom = {cls.__name__: cls for cls in plugin.custom_objects}
        try:
            with tf_module().device(tf_device):
                model = keras.saving.load_model(path, compile=False, safe_mode=True, custom_objects=custom)
        except Exception as exc:  # keras raises assorted types for a bad archive
            raise ArtifactError(f"{path.name} could not be loaded as a Keras model: {exc}") from exc
        expected_input = (
            (None, params["window"], meta["n_features"]) if plugin.uses_history else (None, meta["n_features"])
        )
        if tuple(model.input_shape) != expected_input:
            raise ArtifactError(f"{path.name} expects inputs {model.input_shape}, meta.json says {expected_input}")
        return KerasTrainedModel(model=model, **TrainedModel.common_kwargs(meta, tf_device))


def check_keras_archive(path: Path, plugin=None) -> None:
    """Refuse a .keras archive with unexpected members or objects outside the allowlist.

    Allowed: ALLOWED_CLASSES from Keras itself, Keras classes the model type lists in
    `trusted_types` ("keras.layers.Conv1D"), and the model type's own `custom_objects`."""
    trusted = set(getattr(plugin, "trusted_types", ()))
    custom = {}
    for cls in getattr(plugin, "custom_objects", ()):
        # Keras resolves `registered_name` before module/class_name, so it is checked too.
        custom[(cls.__module__, cls.__name__)] = {None, cls.__name__, keras_module().saving.get_registered_name(cls)}
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
    for module, class_name, registered in _named_objects(config):
        if module is None:
            allowed = class_name in GRAPH_MARKERS and registered is None
        elif str(module).split(".")[0] == "keras":
            allowed = (class_name in ALLOWED_CLASSES or f"{module}.{class_name}" in trusted) and registered in (
                None,
                class_name,
            )
        else:
            allowed = registered in custom.get((module, class_name), ())
        if not allowed or class_name == "Lambda":
            raise UnsafeArtifact(
                f"{path.name} refers to {module}.{class_name}"
                f"{f' (registered as {registered})' if registered not in (None, class_name) else ''}, "
                "which is not an allowed Keras object (a model type lists the ones it needs in "
                "trusted_types / custom_objects)"
            )


def _named_objects(node):
    if isinstance(node, dict):
        if "class_name" in node:
            yield node.get("module"), node["class_name"], node.get("registered_name")
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
