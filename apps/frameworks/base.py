"""The framework adapter interface shared by the torch, keras, scikit-learn, XGBoost and LightGBM adapters.

An adapter turns PreparedData into a TrainedModel (`fit`), writes it as safe files (`save`) and
reads it back (`load`). What it trains are model-type plugins (model_types.ModelType), built-in or
a team's own. The training pipeline, tuning and the registry only ever talk to this interface; one
contract test suite runs every (framework, model_type, task) through it.

Reporter protocol (implemented by the training pipeline):
    reporter.epoch(epoch, total_epochs, metrics)  once per finished epoch (1-based), metrics are
        `train_loss`, `train_<metric>`, `val_loss`, `val_<metric>` (see apps.frameworks.metrics);
    reporter.log(level, message)  level is "INFO", "WARNING" or "ERROR";
    reporter.should_stop() -> None | "cancelled" | "pruned"  called at every batch (torch, keras),
        boosting stage (sklearn) or round (xgboost, lightgbm), so it must be cheap (cache the answer
        for a second or so).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from apps.frameworks.metrics import CLASSIFICATION, REGRESSION, compute_metrics, greater_is_better

from .devices import adapter_device
from .fitting import (
    PREDICT_BATCH_ROWS,
    STOP_REASONS,
    ArtifactError,
    EarlyStopping,
    FitContext,
    InvalidParameter,
    NullReporter,
    ParamSpec,
    Reporter,
    UnsafeArtifact,
    resolve_monitor,
)
from .windows import training_splits, window_index

if TYPE_CHECKING:
    from .model_types import ModelType


class TrainedModel(ABC):
    """A fitted model plus everything needed to use, describe and save it.

    predict/predict_proba take feature rows as produced by the dataset's preprocessor:
      * (n, n_features): one prediction per row for window-1 models; for recurrent models the rows
        are series (one, or one per `groups` key, in time order) and every row with `window - 1`
        earlier rows of its series gets a prediction, in row order (see `input_rows`);
      * (n, window, n_features): ready-made windows, one prediction per window.
    """

    framework: str = ""

    def __init__(
        self,
        *,
        model_type: str,
        task: str,
        params: dict,
        n_features: int,
        window: int,
        classes: list | None,
        n_classes: int | None,
        feature_names: list | None = None,
        target_mean: float = 0.0,
        target_std: float = 1.0,
        device: str = "cpu",
        stopped_reason: str | None = None,
        best_epoch: int | None = None,
        epochs_trained: int = 0,
        history: list | None = None,
        monitor: str = "val_loss",
    ):
        self.model_type = model_type
        self.task = task
        self.params = params
        self.n_features = n_features
        self.window = window
        self.classes = classes
        self.n_classes = n_classes
        self.feature_names = list(feature_names or [])
        self.target_mean = target_mean
        self.target_std = target_std
        self.device = device
        self.stopped_reason = stopped_reason
        self.best_epoch = best_epoch
        self.epochs_trained = epochs_trained
        self.history = history if history is not None else []
        self.monitor = monitor

    @abstractmethod
    def _predict_batch(self, inputs: np.ndarray) -> np.ndarray:
        """Regression values in target units (n,) or class probabilities (n, n_classes)."""

    def _outputs(self, inputs: np.ndarray) -> np.ndarray:
        if self.epochs_trained == 0:
            raise RuntimeError(
                f"the model was stopped ({self.stopped_reason}) before its first epoch finished; "
                "it has nothing to predict with"
            )
        return self.batched_outputs(inputs)

    def batched_outputs(self, inputs: np.ndarray) -> np.ndarray:
        """_predict_batch over model inputs in chunks (also usable while training)."""
        chunks = [
            self._predict_batch(inputs[i : i + PREDICT_BATCH_ROWS])
            for i in range(0, inputs.shape[0], PREDICT_BATCH_ROWS)
        ]
        if not chunks:
            shape = (0,) if self.task == REGRESSION else (0, self.n_classes)
            return np.empty(shape, dtype=np.float32)
        return np.concatenate(chunks)

    def input_rows(self, X, groups=None) -> tuple[np.ndarray, np.ndarray]:
        """(model inputs, index of the row each input predicts) for X as described on the class."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 3:
            if X.shape[1:] != (self.window, self.n_features):
                raise ValueError(f"X: expected windows of shape (n, {self.window}, {self.n_features}), got {X.shape}")
            inputs = X[:, 0, :] if self.window == 1 else X
            return inputs, np.arange(X.shape[0])
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X: expected {self.n_features} feature columns, got shape {X.shape}")
        index = window_index(X.shape[0], groups, self.window)
        inputs = X[index[:, 0]] if self.window == 1 else X[index]
        return inputs, index[:, -1]

    def predict(self, X, groups=None) -> np.ndarray:
        outputs = self._outputs(self.input_rows(X, groups)[0])
        if self.task == REGRESSION:
            return outputs.astype(np.float32)
        return outputs.argmax(axis=1).astype(np.int64)

    def predict_proba(self, X, groups=None) -> np.ndarray:
        if self.task != CLASSIFICATION:
            raise TypeError("predict_proba is only defined for classification models")
        return self._outputs(self.input_rows(X, groups)[0])

    def evaluate(self, X, y, groups=None) -> dict:
        """compute_metrics on the rows that get a prediction (recurrent models skip warm-up rows)."""
        inputs, rows = self.input_rows(X, groups)
        y_true = np.asarray(y)[rows]
        outputs = self._outputs(inputs)
        if self.task == REGRESSION:
            return compute_metrics(REGRESSION, y_true, outputs)
        return compute_metrics(CLASSIFICATION, y_true, outputs.argmax(axis=1), outputs, n_classes=self.n_classes)

    def evaluate_data(self, data) -> dict[str, dict]:
        """Metrics on each non-empty split of PreparedData: {"train": {...}, "val": ..., "test": ...}."""
        out = {}
        for split in ("train", "val", "test"):
            X = getattr(data, f"X_{split}")
            if X is not None and len(X):
                out[split] = self.evaluate(X, getattr(data, f"y_{split}"), getattr(data, f"groups_{split}", None))
        return out

    def describe(self) -> dict:
        """The JSON description written to meta.json (the adapter adds files and library versions)."""
        return {
            "framework": self.framework,
            "model_type": self.model_type,
            "task": self.task,
            "params": self.params,
            "n_features": self.n_features,
            "feature_names": self.feature_names,
            "window": self.window,
            "classes": self.classes,
            "n_classes": self.n_classes,
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "stopped_reason": self.stopped_reason,
            "best_epoch": self.best_epoch,
            "epochs_trained": self.epochs_trained,
            "monitor": self.monitor,
        }

    @classmethod
    def common_kwargs(cls, meta: dict, device: str) -> dict:
        keys = (
            "model_type",
            "task",
            "params",
            "n_features",
            "window",
            "classes",
            "n_classes",
            "feature_names",
            "target_mean",
            "target_std",
            "stopped_reason",
            "best_epoch",
            "epochs_trained",
            "monitor",
        )
        return {k: meta[k] for k in keys} | {"device": device}


class FrameworkAdapter(ABC):
    """One ML library. Subclasses set `name` and `loop_params`, and a GPU-capable one `gpu_device`,
    `gpu_requirement` and `gpu_available()`.

    The model types it trains are plugins (apps.frameworks.model_types.ModelType), found
    by apps.frameworks.discovery; the built-in ones are plugins too.
    """

    name: str = ""
    # Hyperparameters of the adapter's own training loop, added to every model type that uses it.
    loop_params: dict[str, ParamSpec] = {}
    # The library's own names for the CPU and the GPU; no GPU name: it trains on the CPU only.
    cpu_device: str = "cpu"
    gpu_device: str | None = None
    # What the library must see to use a GPU, named when a GPU run finds none.
    gpu_requirement: str = ""

    @property
    def supports_gpu(self) -> bool:
        return self.gpu_device is not None

    def gpu_available(self) -> bool:
        """Whether the library can train on a GPU in this process (GPU-capable adapters ask it)."""
        return False

    def resolve_device(self, requested: str, *, run_label: str = "this run") -> str:
        """The library's name for "cpu" or "gpu"; NoGpuAvailable when no usable GPU is here."""
        return adapter_device(self, requested, run_label=run_label)

    @property
    def model_types(self) -> dict[str, dict[str, ParamSpec]]:
        """Every model type of this framework with its complete parameter specs."""
        return {name: self.param_specs(mt) for name, mt in self.plugins().items()}

    def plugins(self) -> dict[str, "ModelType"]:
        from .discovery import catalog

        return catalog().for_framework(self.name)

    def model_type(self, model_type: str) -> "ModelType":
        found = self.plugins().get(model_type)
        if found is None:
            raise InvalidParameter(
                "model_type", f"{self.name} has no model type {model_type!r}; choose from {list(self.plugins())}"
            )
        return found

    def param_specs(self, model_type: "ModelType") -> dict[str, ParamSpec]:
        specs = dict(model_type.params)
        if not model_type.own_loop:
            for name, spec in self.loop_params.items():
                specs.setdefault(name, spec)
        return specs

    def describe(self) -> dict:
        """JSON for forms and the API: every model type with its parameters and provenance."""
        from .model_types import plugin_provenance

        out = {}
        for name, mt in self.plugins().items():
            provenance = plugin_provenance(mt)
            out[name] = {
                "description": mt.description,
                "tasks": list(mt.tasks),
                "recurrent": mt.uses_history,
                "own_loop": mt.own_loop,
                "plugin": {k: provenance[k] for k in ("module", "package", "package_version")},
                "params": {param: spec.to_dict() for param, spec in self.param_specs(mt).items()},
            }
        return out

    def defaults(self, model_type: str) -> dict:
        return {name: spec.default for name, spec in self._specs(model_type).items()}

    def validate_params(self, model_type: str, params: dict | None) -> dict:
        """Complete `params` with defaults and check each value; InvalidParameter names the culprit."""
        specs = self._specs(model_type)
        params = dict(params or {})
        unknown = sorted(set(params) - set(specs))
        if unknown:
            raise InvalidParameter(
                unknown[0], f"is not a parameter of {self.name} {model_type}; known: {', '.join(specs)}"
            )
        return {name: spec.validate(name, params.get(name, spec.default)) for name, spec in specs.items()}

    def _specs(self, model_type: str) -> dict[str, ParamSpec]:
        return self.param_specs(self.model_type(model_type))

    def window_for(self, model_type: str, params: dict) -> int:
        return int(params.get("window", 1)) if self.model_type(model_type).uses_history else 1

    def check_task(self, model_type: str, task: str) -> None:
        if task not in (REGRESSION, CLASSIFICATION):
            raise ValueError(f"task must be one of {(REGRESSION, CLASSIFICATION)}, got {task!r}")
        supported = self.model_type(model_type).tasks
        if task not in supported:
            raise InvalidParameter(
                "model_type", f"{self.name} {model_type} supports {' and '.join(supported)} only, not {task}"
            )

    def loaded_model_type(self, meta: dict) -> "ModelType":
        """The installed model type for a saved model's meta.json, checked against its provenance."""
        from .model_types import check_provenance

        name = meta.get("model_type")
        current = self.plugins().get(name) if isinstance(name, str) else None
        # Models saved before plugins existed have no "plugin" entry: the name is all there is.
        check_provenance(meta["plugin"] if "plugin" in meta else None, current, framework=self.name, model_type=name)
        return current

    def begin_fit(
        self,
        *,
        data,
        task: str,
        model_type: str,
        params: dict | None,
        seed: int,
        reporter: Reporter | None,
        monitor: str | None,
    ) -> FitContext:
        """Validation shared by every adapter's fit: params, monitor, splits, classes, scaling."""
        params = self.validate_params(model_type, params)
        self.check_task(model_type, task)
        monitor = resolve_monitor(task, monitor)
        classes = list(data.classes) if task == CLASSIFICATION and getattr(data, "classes", None) is not None else None
        n_classes = None
        if task == CLASSIFICATION:
            n_classes = len(classes) if classes else int(np.asarray(data.y_train).max()) + 1
            n_classes = max(n_classes, 2)
        window = self.window_for(model_type, params)
        splits = training_splits(data, task=task, window=window, n_classes=n_classes)
        context = FitContext(
            task=task,
            model_type=model_type,
            params=params,
            seed=int(seed),
            reporter=reporter or NullReporter(),
            splits=splits,
            n_features=splits["train"].X.shape[1],
            n_classes=n_classes,
            classes=classes,
            feature_names=list(getattr(data, "feature_names", None) or []),
            window=window,
            monitor=monitor,
        )
        if task == REGRESSION:
            y = splits["train"].targets().astype(np.float64)
            context.target_mean = float(y.mean())
            std = float(y.std())
            context.target_std = std if std > 1e-12 else 1.0
        return context

    @abstractmethod
    def fit(
        self,
        *,
        data,
        task: str,
        model_type: str,
        params: dict | None = None,
        seed: int = 0,
        device: str = "cpu",
        reporter: Reporter | None = None,
        monitor: str | None = None,
    ) -> TrainedModel:
        """Train; returns early with `stopped_reason` set when the reporter asks to stop.

        monitor: validation metric for early stopping and best-weight restore (default val_loss).
        """

    @abstractmethod
    def save(self, trained: TrainedModel, directory: str | Path) -> None:
        """Write safe files only (no pickle) plus meta.json into `directory` (created if needed)."""

    @abstractmethod
    def load(self, directory: str | Path, *, device: str = "cpu") -> TrainedModel:
        """Read a directory written by `save`; raises UnsafeArtifact / ArtifactError."""


__all__ = [
    "ArtifactError",
    "EarlyStopping",
    "FitContext",
    "FrameworkAdapter",
    "InvalidParameter",
    "NullReporter",
    "ParamSpec",
    "Reporter",
    "STOP_REASONS",
    "TrainedModel",
    "UnsafeArtifact",
    "greater_is_better",
]
