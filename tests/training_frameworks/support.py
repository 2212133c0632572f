"""Small synthetic PreparedData and a reporter that records what an adapter tells it.

The adapters only rely on PreparedData's array attributes, so these tests build them directly:
300 rows of two interleaved entities, split in time order 70/15/15.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TINY_PARAMS = {
    ("torch", "mlp"): {"epochs": 3, "hidden_size": 8, "batch_size": 32, "learning_rate": 0.01},
    ("torch", "lstm"): {"epochs": 3, "hidden_size": 8, "batch_size": 32, "learning_rate": 0.01, "window": 4},
    ("keras", "mlp"): {"epochs": 3, "hidden_size": 8, "batch_size": 32, "learning_rate": 0.01},
    ("keras", "lstm"): {"epochs": 3, "hidden_size": 8, "batch_size": 32, "learning_rate": 0.01, "window": 4},
    ("sklearn", "linear"): {},
    ("sklearn", "gradient_boosting"): {"max_iter": 20, "stage_size": 10},
    ("xgboost", "gradient_boosting"): {"n_estimators": 8, "max_depth": 3, "learning_rate": 0.3},
    ("lightgbm", "gradient_boosting"): {
        "n_estimators": 8,
        "num_leaves": 7,
        "min_child_samples": 5,
        "learning_rate": 0.3,
    },
    # The example plugin package (examples/portal-example-models) keeps the same contract.
    ("torch", "tcn"): {"epochs": 3, "channels": 4, "batch_size": 32, "learning_rate": 0.01, "window": 4},
    ("sklearn", "rbf_kernel_linear"): {"n_components": 20},
    ("sklearn", "sgd_linear"): {"epochs": 3},
}
# (framework, model_type, kind): kind is regression, binary or multiclass.
COMBOS = [(fw, mt, kind) for (fw, mt) in TINY_PARAMS for kind in ("regression", "binary", "multiclass")]
COMBO_IDS = [f"{fw}-{mt}-{kind}" for fw, mt, kind in COMBOS]


@dataclass
class FakePreparedData:
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    groups_train: np.ndarray | None = None
    groups_val: np.ndarray | None = None
    groups_test: np.ndarray | None = None
    classes: list | None = None
    feature_names: list = field(default_factory=list)


def task_of(kind: str) -> str:
    return "regression" if kind == "regression" else "classification"


def make_data(
    kind: str, *, rows: int = 300, n_features: int = 6, seed: int = 0, noise_target: bool = False, groups: bool = True
) -> FakePreparedData:
    """A learnable problem: the target depends on the first two features of the same row."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, n_features)).astype(np.float32)
    signal = X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.normal(size=rows)
    if noise_target:
        signal = rng.normal(size=rows)
    if kind == "regression":
        y = (0.02 * signal).astype(np.float32)  # daily-return scale
        classes = None
    elif kind == "binary":
        y = (signal > 0).astype(np.int64)
        classes = ["down", "up"]
    else:
        y = np.digitize(signal, np.quantile(signal, [1 / 3, 2 / 3])).astype(np.int64)
        classes = ["sell", "hold", "buy"]
    entity = np.array(["AAA", "BBB"] * (rows // 2 + 1))[:rows] if groups else None
    a, b = int(rows * 0.7), int(rows * 0.85)

    def part(arr, lo, hi):
        return None if arr is None else arr[lo:hi]

    return FakePreparedData(
        X[:a],
        y[:a],
        X[a:b],
        y[a:b],
        X[b:],
        y[b:],
        part(entity, 0, a),
        part(entity, a, b),
        part(entity, b, rows),
        classes,
        [f"f{i}" for i in range(n_features)],
    )


class RecordingReporter:
    """Records epochs and log lines; answers should_stop with `stop_reason` once a condition holds.

    stop_after_checks: stop once should_stop has been asked this many times (a mid-epoch cancel);
    stop_after_epochs: stop once this many epochs were reported (a pruner at an epoch boundary).
    """

    def __init__(
        self,
        stop_reason: str | None = None,
        *,
        stop_after_checks: int | None = None,
        stop_after_epochs: int | None = None,
    ):
        self.epochs: list[tuple[int, int, dict]] = []
        self.logs: list[tuple[str, str]] = []
        self.checks = 0
        self.stop_reason = stop_reason
        self.stop_after_checks = stop_after_checks
        self.stop_after_epochs = stop_after_epochs

    def epoch(self, epoch, total_epochs, metrics):
        self.epochs.append((epoch, total_epochs, dict(metrics)))

    def log(self, level, message):
        assert level in ("INFO", "WARNING", "ERROR")
        self.logs.append((level, message))

    def should_stop(self):
        self.checks += 1
        if self.stop_after_checks is not None and self.checks > self.stop_after_checks:
            return self.stop_reason
        if self.stop_after_epochs is not None and len(self.epochs) >= self.stop_after_epochs:
            return self.stop_reason
        return None
