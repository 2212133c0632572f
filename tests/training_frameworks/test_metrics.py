"""apps.frameworks.metrics: the numbers every page and study share."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from apps.frameworks.metrics import DEFAULT_METRIC, compute_metrics, greater_is_better, metric_names


def test_binary_classification_metrics_match_hand_computed_values():
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([0, 1, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    m = compute_metrics("classification", y_true, y_pred, proba)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))  # precision 2/3, recall 2/3
    # Positive scores 0.8, 0.7, 0.4 against negatives 0.1, 0.6: 5 of 6 pairs ordered correctly.
    assert m["roc_auc"] == pytest.approx(5 / 6)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.8, 0.7, 0.4])))


def test_multiclass_roc_auc_is_the_macro_one_vs_rest_average():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 3, size=60)
    proba = rng.dirichlet([1, 1, 1], size=60)
    m = compute_metrics("classification", y_true, proba.argmax(axis=1), proba)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y_true, proba, multi_class="ovr", average="macro"))


def test_multiclass_f1_is_macro_and_auc_skips_a_class_missing_from_the_truth():
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 1, 1, 2])
    proba = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.1, 0.3, 0.6]])
    m = compute_metrics("classification", y_true, y_pred, proba)
    # Per class F1: class 0 = 2/3 (P 1, R 1/2), class 1 = 1/2 (P 1/2, R 1/2), class 2 = 0 (never true).
    assert m["f1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert m["roc_auc"] == pytest.approx(np.mean([roc_auc_score(y_true == c, proba[:, c]) for c in (0, 1)]))


def test_undefined_metrics_are_left_out_rather_than_nan():
    m = compute_metrics("classification", np.array([1, 1]), np.array([1, 0]), np.array([[0.2, 0.8], [0.6, 0.4]]))
    assert "roc_auc" not in m and m["accuracy"] == 0.5
    assert "r2" not in compute_metrics("regression", np.array([0.1]), np.array([0.2]))
    assert compute_metrics("regression", np.array([]), np.array([])) == {}


def test_regression_metrics_include_directional_accuracy_for_returns():
    y_true = np.array([0.02, -0.01, 0.03, -0.04])
    y_pred = np.array([0.01, 0.01, 0.02, -0.02])
    m = compute_metrics("regression", y_true, y_pred)
    errors = y_pred - y_true
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)))
    assert m["mae"] == pytest.approx(np.mean(np.abs(errors)))
    assert m["r2"] == pytest.approx(1 - np.sum(errors**2) / np.sum((y_true - y_true.mean()) ** 2))
    assert m["directional_accuracy"] == pytest.approx(3 / 4)


def test_it_rejects_predictions_of_another_length_and_unknown_tasks():
    with pytest.raises(ValueError, match="y_true has 3 rows but y_pred has 2"):
        compute_metrics("regression", [1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="task must be one of"):
        compute_metrics("ranking", [1], [1])


def test_metric_directions_and_names():
    assert greater_is_better("val_accuracy") and greater_is_better("roc_auc") and greater_is_better("r2")
    assert not greater_is_better("val_rmse") and not greater_is_better("train_loss")
    assert set(metric_names("regression")) == {"rmse", "mae", "r2", "directional_accuracy", "loss"}
    assert DEFAULT_METRIC == {"classification": "accuracy", "regression": "rmse"}
    with pytest.raises(ValueError, match="unknown metric"):
        greater_is_better("sharpe")
