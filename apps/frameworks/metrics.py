"""Evaluation metrics shared by training, tuning, the registry and monitoring.

One implementation so a number called "f1" means the same thing on the training run page, in a
tuning study and in a monitoring window. Every value is a plain Python float (JSON-ready); a metric
that is undefined for the given data (ROC AUC when y_true holds a single class, R2 on fewer than two
rows) is left out of the result rather than reported as NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

REGRESSION = "regression"
CLASSIFICATION = "classification"
TASKS = (REGRESSION, CLASSIFICATION)


@dataclass(frozen=True)
class MetricInfo:
    name: str
    task: str | None  # None: applies to every task (the training loss)
    greater_is_better: bool
    label: str


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("accuracy", CLASSIFICATION, True, "Accuracy"),
        MetricInfo("f1", CLASSIFICATION, True, "F1 (binary: positive class; multi-class: macro)"),
        MetricInfo("roc_auc", CLASSIFICATION, True, "ROC AUC (multi-class: one-vs-rest, macro)"),
        MetricInfo("log_loss", CLASSIFICATION, False, "Log loss"),
        MetricInfo("rmse", REGRESSION, False, "Root mean squared error"),
        MetricInfo("mae", REGRESSION, False, "Mean absolute error"),
        MetricInfo("r2", REGRESSION, True, "R squared"),
        MetricInfo("directional_accuracy", REGRESSION, True, "Share of predictions with the sign of the truth"),
        MetricInfo("loss", None, False, "Training objective"),
    )
}

DEFAULT_METRIC = {CLASSIFICATION: "accuracy", REGRESSION: "rmse"}

_SPLIT_PREFIXES = ("train_", "val_", "test_")


def metric_base_name(name: str) -> str:
    """`val_rmse` -> `rmse`; names without a split prefix are returned unchanged."""
    for prefix in _SPLIT_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def metric_names(task: str) -> list[str]:
    """Metrics `compute_metrics` can report for `task`, plus the training loss."""
    _check_task(task)
    return [m.name for m in METRICS.values() if m.task in (task, None)]


def greater_is_better(name: str) -> bool:
    """Direction of a metric, with or without a `train_`/`val_`/`test_` prefix."""
    base = metric_base_name(name)
    if base not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[base].greater_is_better


def is_better(name: str, candidate: float, best: float | None, *, min_delta: float = 0.0) -> bool:
    """True when `candidate` improves on `best` by more than `min_delta` for metric `name`."""
    if best is None:
        return True
    if greater_is_better(name):
        return candidate > best + min_delta
    return candidate < best - min_delta


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def compute_metrics(task: str, y_true, y_pred, y_proba=None, *, n_classes: int | None = None) -> dict:
    """Metrics for one set of predictions.

    classification: `y_true`/`y_pred` are class indices; `y_proba` (n, n_classes) adds ROC AUC and
    log loss. Binary F1 is the F1 of class 1; with more classes it is the macro average.
    regression: rmse, mae, r2 and directional_accuracy (share of rows where the prediction has the
    sign of the truth, the question that matters for returns).
    """
    _check_task(task)
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(f"y_true has {y_true.shape[0]} rows but y_pred has {y_pred.shape[0]}")
    if y_true.shape[0] == 0:
        return {}
    if task == REGRESSION:
        return _regression_metrics(y_true.astype(np.float64).ravel(), y_pred.astype(np.float64).ravel())
    return _classification_metrics(y_true.astype(np.int64).ravel(), y_pred.astype(np.int64).ravel(), y_proba, n_classes)


def _regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    error = y_pred - y_true
    result = {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "directional_accuracy": float(np.mean(np.sign(y_true) == np.sign(y_pred))),
    }
    if y_true.shape[0] >= 2 and np.ptp(y_true) > 0:
        result["r2"] = float(skm.r2_score(y_true, y_pred))
    return result


def _classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_proba, n_classes: int | None) -> dict:
    if y_proba is not None:
        y_proba = np.asarray(y_proba, dtype=np.float64)
        if y_proba.ndim != 2 or y_proba.shape[0] != y_true.shape[0]:
            raise ValueError(f"y_proba must have shape (rows, classes); got {y_proba.shape}")
        n_classes = y_proba.shape[1]
    if n_classes is None:
        n_classes = int(max(y_true.max(), y_pred.max())) + 1
    n_classes = max(n_classes, 2)
    labels = list(range(n_classes))
    result = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "f1": float(
            skm.f1_score(
                y_true,
                y_pred,
                labels=labels if n_classes > 2 else None,
                average="binary" if n_classes == 2 else "macro",
                zero_division=0,
            )
        ),
    }
    if y_proba is None:
        return result
    # Normalising guards against float32 rounding; log_loss insists rows sum to one.
    proba = np.clip(y_proba, 0.0, 1.0)
    proba = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-12, None)
    result["log_loss"] = float(skm.log_loss(y_true, proba, labels=labels))
    auc = _roc_auc(y_true, proba)
    if auc is not None:
        result["roc_auc"] = auc
    return result


def _roc_auc(y_true: np.ndarray, proba: np.ndarray) -> float | None:
    """Binary AUC on class 1, or the macro one-vs-rest AUC over the classes present in y_true.

    Computed per class by hand because sklearn's multi-class ovr refuses a y_true that lacks one
    of the classes, which happens on small validation windows.
    """
    present = np.unique(y_true)
    if present.shape[0] < 2:
        return None
    if proba.shape[1] == 2:
        return float(skm.roc_auc_score(y_true == 1, proba[:, 1]))
    scores = [skm.roc_auc_score(y_true == c, proba[:, c]) for c in present]
    return float(np.mean(scores))
