"""Same seed, same data, CPU: the same model, epoch for epoch."""

import numpy as np
import pytest

from apps.frameworks import get_adapter

from .support import TINY_PARAMS, RecordingReporter, make_data

CASES = [
    ("torch", "mlp", "binary"),
    ("torch", "lstm", "regression"),
    ("keras", "mlp", "multiclass"),
    ("keras", "lstm", "regression"),
    ("sklearn", "gradient_boosting", "multiclass"),
    ("xgboost", "gradient_boosting", "multiclass"),
    ("xgboost", "gradient_boosting", "regression"),
    ("lightgbm", "gradient_boosting", "binary"),
    ("lightgbm", "gradient_boosting", "regression"),
]
# Row and feature sampling make the boosters' result depend on the seed.
SAMPLED = {"subsample": 0.7, "colsample_bytree": 0.7}


def _run(framework, model_type, kind, seed):
    data = make_data(kind)
    reporter = RecordingReporter()
    params = TINY_PARAMS[(framework, model_type)]
    if framework == "sklearn":
        params = params | {"max_iter": 30, "stage_size": 10}
    if framework in ("xgboost", "lightgbm"):
        params = params | SAMPLED
    trained = get_adapter(framework).fit(
        data=data,
        task="regression" if kind == "regression" else "classification",
        model_type=model_type,
        params=params,
        seed=seed,
        reporter=reporter,
    )
    raw = (
        trained.predict(data.X_test, data.groups_test)
        if kind == "regression"
        else trained.predict_proba(data.X_test, data.groups_test)
    )
    return reporter.epochs, raw


@pytest.mark.parametrize(("framework", "model_type", "kind"), CASES, ids=["-".join(c) for c in CASES])
def test_the_same_seed_gives_identical_metrics_and_predictions(framework, model_type, kind):
    epochs_a, raw_a = _run(framework, model_type, kind, seed=11)
    epochs_b, raw_b = _run(framework, model_type, kind, seed=11)
    assert epochs_a == epochs_b
    np.testing.assert_array_equal(raw_a, raw_b)


@pytest.mark.parametrize(
    ("framework", "model_type"),
    [("torch", "mlp"), ("keras", "mlp"), ("xgboost", "gradient_boosting"), ("lightgbm", "gradient_boosting")],
)
def test_another_seed_gives_another_network(framework, model_type):
    _, raw_a = _run(framework, model_type, "regression", seed=11)
    _, raw_b = _run(framework, model_type, "regression", seed=12)
    assert not np.array_equal(raw_a, raw_b)
