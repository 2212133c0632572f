"""What a run's model does on held-out rows, beyond single-number metrics: confusion matrix and
ROC / precision-recall curves for classifiers, residual summary and residual-vs-prediction points
for regressors. Computed once, in the worker, right after the metrics on the same split, and stored
as JSON on the run (`TrainingRun.evaluation`), so the admin pages draw it without loading the model.

Curves are thinned to at most CURVE_POINTS points and the scatter to SCATTER_POINTS, so the JSON
stays a few kilobytes however big the split is.
"""

import numpy as np

from apps.frameworks.metrics import CLASSIFICATION, REGRESSION

CURVE_POINTS = 101
SCATTER_POINTS = 200
HISTOGRAM_BINS = 20
# A many-class problem would make ROC charts of one-vs-rest lines nobody can read.
MAX_CURVE_CLASSES = 10


def _thin(*arrays: np.ndarray, limit: int) -> list[list[float]]:
    """Every array sampled at the same evenly spaced indices (first and last kept)."""
    n = len(arrays[0])
    index = np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(int)) if n else np.array([], dtype=int)
    return [[round(float(v), 6) for v in a[index]] for a in arrays]


def _split_rows(trained, data) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(split name, model inputs, true labels of the rows that get a prediction) of the test split,
    or the validation split when the test split is empty."""
    for split in ("test", "val"):
        X = getattr(data, f"X_{split}")
        if X is not None and len(X):
            inputs, rows = trained.input_rows(X, getattr(data, f"groups_{split}", None))
            if len(rows):
                return split, inputs, np.asarray(getattr(data, f"y_{split}"))[rows]
    return None


def evaluation_plots(*, trained, data) -> dict:
    """The stored evaluation of `trained` (a TrainedModel) on `data` (PreparedData); {} without rows."""
    picked = _split_rows(trained, data)
    if picked is None:
        return {}
    split, inputs, y_true = picked
    outputs = trained.batched_outputs(inputs)
    if trained.task == REGRESSION:
        return {
            "task": REGRESSION,
            "split": split,
            "rows": int(len(y_true)),
            **_residuals(y_true.astype(np.float64).ravel(), outputs.astype(np.float64).ravel()),
        }
    labels = [str(c) for c in (data.classes or range(trained.n_classes))]
    return {
        "task": CLASSIFICATION,
        "split": split,
        "rows": int(len(y_true)),
        **_classification(y_true.astype(np.int64).ravel(), outputs.astype(np.float64), labels),
    }


def _classification(y_true: np.ndarray, proba: np.ndarray, labels: list[str]) -> dict:
    from sklearn.metrics import auc, average_precision_score, confusion_matrix, precision_recall_curve, roc_curve

    n_classes = len(labels)
    y_pred = proba.argmax(axis=1)
    counts = confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))
    # Binary: the curves of the positive class (index 1, e.g. "up"); more classes: one-vs-rest each.
    curve_classes = [1] if n_classes == 2 else list(range(min(n_classes, MAX_CURVE_CLASSES)))
    roc, pr = [], []
    for c in curve_classes:
        positive = y_true == c
        if positive.all() or not positive.any():
            continue  # a curve needs both outcomes among the rows
        fpr, tpr, _ = roc_curve(positive, proba[:, c])
        precision, recall, _ = precision_recall_curve(positive, proba[:, c])
        fpr_t, tpr_t = _thin(fpr, tpr, limit=CURVE_POINTS)
        recall_t, precision_t = _thin(recall[::-1], precision[::-1], limit=CURVE_POINTS)
        roc.append({"label": labels[c], "fpr": fpr_t, "tpr": tpr_t, "auc": round(float(auc(fpr, tpr)), 6)})
        pr.append(
            {
                "label": labels[c],
                "recall": recall_t,
                "precision": precision_t,
                "average_precision": round(float(average_precision_score(positive, proba[:, c])), 6),
                "base_rate": round(float(positive.mean()), 6),
            }
        )
    return {"confusion_matrix": {"labels": labels, "counts": counts.tolist()}, "roc": roc, "pr": pr}


def _residuals(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    residual = y_true - y_pred
    quantiles = np.quantile(residual, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    counts, edges = np.histogram(residual, bins=HISTOGRAM_BINS)
    order = np.argsort(y_pred, kind="stable")
    predicted, residual_sorted = _thin(y_pred[order], residual[order], limit=SCATTER_POINTS)
    return {
        "residuals": {
            "mean": round(float(residual.mean()), 6),
            "std": round(float(residual.std()), 6),
            "mae": round(float(np.abs(residual).mean()), 6),
            "quantiles": dict(
                zip(["min", "p5", "p25", "median", "p75", "p95", "max"], (round(float(q), 6) for q in quantiles))
            ),
            "histogram": {"edges": [round(float(e), 6) for e in edges], "counts": counts.tolist()},
            "points": {"predicted": predicted, "residual": residual_sorted},
        }
    }
