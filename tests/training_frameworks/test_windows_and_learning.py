"""Windows stay inside one entity's series; each framework actually learns a learnable signal."""

import numpy as np
import pytest

from apps.frameworks import get_adapter
from apps.frameworks.windows import window_index

from .support import RecordingReporter, make_data


def test_windows_hold_consecutive_rows_of_one_entity_and_follow_the_row_order():
    groups = np.array(["A", "B", "A", "A", "B", "A", "B", "C"])
    index = window_index(len(groups), groups, 3)
    # A = rows 0,2,3,5; B = rows 1,4,6; C has one row and gets no window.
    assert index.tolist() == [[0, 2, 3], [2, 3, 5], [1, 4, 6]]
    assert np.all(np.diff(index[:, -1]) > 0)


def test_without_groups_the_rows_are_one_series():
    assert window_index(4, None, 2).tolist() == [[0, 1], [1, 2], [2, 3]]
    assert window_index(3, None, 1).tolist() == [[0], [1], [2]]


def test_a_recurrent_model_predicts_each_entitys_rows_from_that_entitys_history(fitted):
    trained, _ = fitted("torch", "lstm", "regression")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 6)).astype(np.float32), rng.normal(size=(6, 6)).astype(np.float32)
    interleaved = np.empty((12, 6), dtype=np.float32)
    interleaved[0::2], interleaved[1::2] = a, b
    groups = np.array(["a", "b"] * 6)
    mixed = trained.predict(interleaved, groups)
    separate = np.empty_like(mixed)
    # Rows 6..11 of the interleaved input are a[3], b[3], a[4], b[4], a[5], b[5].
    separate[0::2], separate[1::2] = trained.predict(a), trained.predict(b)
    np.testing.assert_allclose(mixed, separate, rtol=1e-5)  # batch composition moves the last bits


LEARNING = {
    "torch": ("mlp", {"epochs": 15, "hidden_size": 16, "learning_rate": 0.02, "batch_size": 32}),
    "keras": ("mlp", {"epochs": 15, "hidden_size": 16, "learning_rate": 0.02, "batch_size": 32}),
    "sklearn": ("gradient_boosting", {"max_iter": 60, "stage_size": 10}),
    "xgboost": ("gradient_boosting", {"n_estimators": 60, "max_depth": 3}),
    "lightgbm": ("gradient_boosting", {"n_estimators": 60, "num_leaves": 7}),
}


@pytest.mark.parametrize("framework", list(LEARNING))
def test_it_learns_a_signal_far_beyond_chance(framework):
    model_type, params = LEARNING[framework]
    data = make_data("binary", rows=400, seed=5)
    trained = get_adapter(framework).fit(
        data=data, task="classification", model_type=model_type, params=params, seed=0, reporter=RecordingReporter()
    )
    test = trained.evaluate(data.X_test, data.y_test)
    assert test["accuracy"] > 0.8 and test["roc_auc"] > 0.85, test
