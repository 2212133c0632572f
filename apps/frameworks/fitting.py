"""What a model type's fit is given and may raise: parameter specs, the fit context (data splits,
reporter, early stopping) and the adapter errors. Below both base.py (the adapters, which use model
types) and model_types.py (the plugins, which need only this), so no import runs back between them.

Reporter protocol (implemented by the training pipeline): see base.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from apps.frameworks.metrics import (
    CLASSIFICATION,
    REGRESSION,
    compute_metrics,
    is_better,
    metric_base_name,
    metric_names,
)

from .windows import Split

STOP_REASONS = ("cancelled", "pruned")
PREDICT_BATCH_ROWS = 4096


class ArtifactError(Exception):
    """A model directory that is missing files, was written for another framework, or is corrupt."""


class UnsafeArtifact(ArtifactError):
    """A file whose loading could run code (a pickle) or that holds types outside the allowlist."""


class InvalidParameter(ValueError):
    """A hyperparameter the model type does not accept; `param` names it for form/API errors."""

    def __init__(self, param: str, message: str):
        self.param = param
        super().__init__(f"{param}: {message}")


class Reporter(Protocol):
    def epoch(self, epoch: int, total_epochs: int, metrics: dict) -> None: ...

    def log(self, level: str, message: str) -> None: ...

    def should_stop(self) -> str | None: ...


class NullReporter:
    """A reporter for callers that do not watch progress (scripts, seeding)."""

    def epoch(self, epoch: int, total_epochs: int, metrics: dict) -> None:
        pass

    def log(self, level: str, message: str) -> None:
        pass

    def should_stop(self) -> str | None:
        return None


@dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter: kind "int" | "float" | "choice" | "bool", default, inclusive range.

    `log` tells a search strategy to sample the range on a log scale.
    """

    kind: str
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    log: bool = False
    help: str = ""

    def validate(self, name: str, value: Any) -> Any:
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise InvalidParameter(name, f"must be true or false, got {value!r}")
            return value
        if self.kind == "choice":
            if value not in self.choices:
                raise InvalidParameter(name, f"must be one of {list(self.choices)}, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InvalidParameter(name, f"must be a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise InvalidParameter(name, f"must be finite, got {value!r}")
        if self.kind == "int":
            if float(value) != int(value):
                raise InvalidParameter(name, f"must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise InvalidParameter(name, f"must be between {self.low:g} and {self.high:g}, got {value!r}")
        return value

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "default": self.default, "help": self.help}
        if self.kind in ("int", "float"):
            out.update(low=self.low, high=self.high, log=self.log)
        if self.kind == "choice":
            out["choices"] = list(self.choices)
        return out


def resolve_monitor(task: str, monitor: str | None) -> str:
    """The validation metric that drives early stopping: `val_loss` unless a task metric is named."""
    if monitor is None:
        return "val_loss"
    base = metric_base_name(monitor)
    if base not in metric_names(task):
        raise ValueError(f"monitor: {monitor!r} is not a {task} metric; choose from {metric_names(task)}")
    # The classification loss is the cross-entropy, i.e. the log loss.
    return "val_loss" if base == "log_loss" else f"val_{base}"


class EarlyStopping:
    """Tracks the best epoch on the monitored metric and says when patience has run out."""

    def __init__(self, monitor: str, patience: int):
        self.monitor = monitor
        self.patience = patience
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0

    def update(self, epoch: int, metrics: dict) -> bool:
        """Record an epoch; True when it is the new best (the caller keeps its weights)."""
        value = metrics.get(self.monitor)
        if value is None or not math.isfinite(value):
            if self.best_epoch is None and self.monitor != "val_loss":
                # ROC AUC is undefined on a single-class validation split; the loss always exists.
                self.monitor = "val_loss"
                value = metrics["val_loss"]
            else:
                self.wait += 1
                return False
        if is_better(self.monitor, value, self.best_value):
            self.best_value, self.best_epoch, self.wait = value, epoch, 0
            return True
        self.wait += 1
        return False

    @property
    def exhausted(self) -> bool:
        return self.wait >= self.patience


@dataclass
class FitContext:
    """What every adapter's fit needs after validation: splits, class count, target scaling."""

    task: str
    model_type: str
    params: dict
    seed: int
    reporter: Reporter
    splits: dict[str, Split]
    n_features: int
    n_classes: int | None
    classes: list | None
    feature_names: list
    window: int
    monitor: str
    target_mean: float = 0.0
    target_std: float = 1.0
    history: list = field(default_factory=list)
    device: str = "cpu"
    # Set by the adapter: (model, model inputs) -> regression values in target units or class
    # probabilities, so report_epoch can score any model the adapter knows how to run.
    outputs_of: Any = None
    stopped_reason: str | None = None

    def log(self, message: str, level: str = "INFO") -> None:
        self.reporter.log(level, message)

    def report_epoch(self, epoch: int, total: int, model) -> dict:
        """Score `model` on the train and validation splits, report the epoch, return its metrics."""
        metrics = {}
        for name in ("train", "val"):
            split = self.splits[name]
            metrics |= self.split_metrics(name, split.targets(), self.outputs_of(model, split.inputs()))
        self.record_epoch(epoch, total, metrics)
        return metrics

    def model_kwargs(self, **fields) -> dict:
        """The TrainedModel fields every adapter takes from the fit, plus `fields` (device, outcome)."""
        return (
            dict(
                model_type=self.model_type,
                task=self.task,
                params=self.params,
                n_features=self.n_features,
                window=self.window,
                classes=self.classes,
                n_classes=self.n_classes,
                feature_names=self.feature_names,
                target_mean=self.target_mean,
                target_std=self.target_std,
                history=self.history,
                monitor=self.monitor,
            )
            | fields
        )

    def own_loop_outcome(self) -> dict:
        """How a loop that only reported epochs ended: epochs done, stop reason, best reported epoch."""
        return {
            "epochs_trained": len(self.history),
            "stopped_reason": self.stopped_reason,
            "best_epoch": self.best_epoch(),
        }

    def best_epoch(self) -> int | None:
        """The reported epoch with the best monitored value (for loops that do not track it)."""
        stopper = EarlyStopping(self.monitor, patience=1)
        for entry in self.history:
            stopper.update(entry["epoch"], entry)
        return stopper.best_epoch

    def split_metrics(self, name: str, y_true: np.ndarray, output: np.ndarray) -> dict:
        """`<split>_loss` and `<split>_<metric>` from the model's output on one split.

        output: regression values in target units, or class probabilities (rows, n_classes). The
        loss is the training objective on the same scale for every framework: mean squared error
        of the standardised target, or cross-entropy.
        """
        if self.task == REGRESSION:
            z = (output.astype(np.float64) - y_true) / self.target_std
            loss = float(np.mean(z**2))
            metrics = compute_metrics(REGRESSION, y_true, output)
        else:
            proba = np.clip(output.astype(np.float64), 1e-12, 1.0)
            loss = float(-np.mean(np.log(proba[np.arange(y_true.shape[0]), y_true])))
            metrics = compute_metrics(CLASSIFICATION, y_true, output.argmax(axis=1), output, n_classes=self.n_classes)
            metrics.pop("log_loss", None)  # the same number as the loss
        return {f"{name}_loss": loss} | {f"{name}_{k}": v for k, v in metrics.items()}

    def record_epoch(self, epoch: int, total: int, metrics: dict) -> None:
        self.history.append({"epoch": epoch} | metrics)
        self.reporter.epoch(epoch, total, metrics)

    def should_stop(self) -> str | None:
        reason = self.reporter.should_stop()
        if reason is not None and reason not in STOP_REASONS:
            raise ValueError(f"reporter.should_stop() returned {reason!r}; expected one of {STOP_REASONS}")
        if reason is not None:
            self.stopped_reason = reason
        return reason
