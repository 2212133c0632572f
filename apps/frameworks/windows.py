"""Rows -> model inputs: validated train/val/test splits and sliding windows within each series.

A recurrent model with window W sees W consecutive rows of the same group (entity) and predicts
the target of the last one. Rows of a group are in time order in PreparedData, but groups may be
interleaved, so windows are built per group and then put back in the order of their last row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apps.frameworks.metrics import CLASSIFICATION, REGRESSION, TASKS

SPLITS = ("train", "val", "test")


def window_index(n_rows: int, groups, window: int) -> np.ndarray:
    """Row indices of every full window: shape (n_windows, window), sorted by the window's last row.

    Rows whose group has fewer than `window - 1` earlier rows get no window. `groups=None` means the
    rows form one series.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    if window == 1:
        return np.arange(n_rows, dtype=np.int64).reshape(-1, 1)
    if groups is None:
        codes = np.zeros(n_rows, dtype=np.int64)
    else:
        groups = np.asarray(groups)
        if groups.shape[0] != n_rows:
            raise ValueError(f"groups has {groups.shape[0]} entries for {n_rows} rows")
        _, codes = np.unique(groups.astype(str) if groups.dtype == object else groups, return_inverse=True)
    # A stable sort keeps each group's rows in their (time) order.
    order = np.argsort(codes, kind="stable")
    boundaries = np.flatnonzero(np.diff(codes[order])) + 1
    pieces = [
        np.lib.stride_tricks.sliding_window_view(rows, window)
        for rows in np.split(order, boundaries)
        if rows.shape[0] >= window
    ]
    if not pieces:
        return np.empty((0, window), dtype=np.int64)
    index = np.concatenate(pieces).astype(np.int64)
    return index[np.argsort(index[:, -1], kind="stable")]


def gather_windows(X: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(rows, features) + (n, W) index -> (n, W, features), or (n, features) when W == 1."""
    if index.shape[1] == 1:
        return X[index[:, 0]]
    return X[index]


@dataclass
class Split:
    """One split of PreparedData with the window index the model trains or evaluates on."""

    name: str
    X: np.ndarray  # (rows, features) float32
    y: np.ndarray  # (rows,) float32 or int64
    index: np.ndarray  # (n_examples, window)

    def __len__(self) -> int:
        return self.index.shape[0]

    @property
    def window(self) -> int:
        return self.index.shape[1]

    def inputs(self, index: np.ndarray | None = None) -> np.ndarray:
        return gather_windows(self.X, self.index if index is None else index)

    def targets(self, index: np.ndarray | None = None) -> np.ndarray:
        return self.y[(self.index if index is None else index)[:, -1]]


def training_splits(data, *, task: str, window: int, n_classes: int | None) -> dict[str, Split]:
    """Validate PreparedData and index its splits; ValueError names the offending array.

    Needs rows in train and val (val drives early stopping); test may be empty.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    splits: dict[str, Split] = {}
    n_features = None
    for name in SPLITS:
        X = _array(data, f"X_{name}")
        y = _array(data, f"y_{name}")
        if X.ndim != 2:
            raise ValueError(f"X_{name} must be 2-dimensional (rows, features), got shape {X.shape}")
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"y_{name} must be 1-dimensional with {X.shape[0]} rows, got shape {y.shape}")
        if n_features is None:
            n_features = X.shape[1]
        elif X.shape[1] != n_features:
            raise ValueError(f"X_{name} has {X.shape[1]} features, X_train has {n_features}")
        X = X.astype(np.float32, copy=False)
        if not np.isfinite(X).all():
            raise ValueError(f"X_{name} contains NaN or infinite values")
        y = _targets(y, task=task, name=f"y_{name}", n_classes=n_classes)
        groups = getattr(data, f"groups_{name}", None)
        splits[name] = Split(name, X, y, window_index(X.shape[0], groups, window))
    if n_features == 0:
        raise ValueError("X_train has no feature columns")
    for name in ("train", "val"):
        if splits[name].X.shape[0] == 0:
            raise ValueError(f"the {name} split is empty; training needs rows in train and val")
        if len(splits[name]) == 0:
            raise ValueError(
                f"window: {window} rows is longer than every series in the {name} split; "
                "use a smaller window or more rows per entity"
            )
    if task == CLASSIFICATION and np.unique(splits["train"].targets()).shape[0] < 2:
        raise ValueError("y_train: classification needs at least two classes in the training split")
    return splits


def _array(data, attribute: str) -> np.ndarray:
    value = getattr(data, attribute, None)
    if value is None:
        raise ValueError(f"{attribute} is missing from the prepared data")
    return np.asarray(value)


def _targets(y: np.ndarray, *, task: str, name: str, n_classes: int | None) -> np.ndarray:
    if task == REGRESSION:
        y = y.astype(np.float32, copy=False)
        if not np.isfinite(y).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        return y
    if y.shape[0] and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"{name} must hold class indices (integers) for classification")
    y = y.astype(np.int64, copy=False)
    if y.shape[0] and (y.min() < 0 or (n_classes is not None and y.max() >= n_classes)):
        raise ValueError(f"{name} has class indices outside 0..{(n_classes or 1) - 1}")
    return y
