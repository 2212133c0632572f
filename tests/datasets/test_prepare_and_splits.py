"""prepare_training_data: labels, splits without leakage, fitting on the training split only."""

import numpy as np
import pandas as pd
import pytest

from apps.datasets.preprocessing import DataError, DatasetInfo, SpecError, prepare_training_data

PRICE_SPEC = {
    "steps": [
        {"op": "log_returns", "columns": ["close"], "periods": [1]},
        {"op": "lags", "columns": ["close_logret1"], "lags": [1, 2]},
        {"op": "rolling", "columns": ["close_logret1"], "windows": [5], "stats": ["mean", "std"]},
        {"op": "rsi", "column": "close", "window": 14},
        {"op": "scale", "columns": "*", "method": "standard"},
    ],
    "target": {"horizon": 1, "kind": "direction"},
    "exclude": ["open", "high", "low", "close", "volume"],
}


def test_a_time_series_split_keeps_every_training_row_before_every_validation_and_test_row(prices, price_info):
    data = prepare_training_data(df=prices, dataset=price_info, spec=PRICE_SPEC)
    assert data.time_train.max() < data.time_val.min()
    assert data.time_val.max() < data.time_test.min()
    sizes = np.array([len(data.y_train), len(data.y_val), len(data.y_test)])
    assert np.allclose(sizes / sizes.sum(), [0.7, 0.15, 0.15], atol=0.04)


def test_rows_within_each_split_are_grouped_by_entity_in_time_order(prices, price_info):
    data = prepare_training_data(df=prices, dataset=price_info, spec=PRICE_SPEC)
    for groups, times in ((data.groups_train, data.time_train), (data.groups_test, data.time_test)):
        for ticker in ("AAA", "BBB", "CCC"):
            mine = times[groups == ticker]
            assert len(mine) and np.all(np.diff(mine.astype(np.int64)) > 0)


def test_labels_whose_horizon_reaches_into_the_next_split_are_purged():
    days = pd.bdate_range("2024-01-01", periods=100)
    df = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "close": np.linspace(10, 20, 100)})
    info = DatasetInfo(task="regression", target_column="close", time_column="date")
    spec = {
        "steps": [{"op": "returns", "columns": ["close"]}],
        "target": {"horizon": 5, "kind": "return"},
        "exclude": ["close"],
    }
    data = prepare_training_data(df=df, dataset=info, spec=spec)
    # The last training row's label is read 5 rows later: that row must still be before validation.
    last_train = np.flatnonzero(days == pd.Timestamp(data.time_train.max()))[0]
    assert days[last_train + 5] < pd.Timestamp(data.time_val.min())


def test_direction_labels_are_up_when_the_next_close_is_higher():
    df = pd.DataFrame(
        {
            "date": pd.bdate_range("2024-01-01", periods=40).strftime("%Y-%m-%d"),
            "close": np.tile([10.0, 11.0, 10.5, 10.5], 10),
        }
    )
    info = DatasetInfo(task="classification", target_column="close", time_column="date")
    spec = {
        "steps": [{"op": "calendar", "features": ["dayofweek"]}],
        "target": {"horizon": 1, "kind": "direction"},
        "exclude": ["close"],
    }
    data = prepare_training_data(df=df, dataset=info, spec=spec)
    assert data.classes == ["down", "up"]
    # 10 -> 11 up, 11 -> 10.5 down, 10.5 -> 10.5 flat counts as down, 10.5 -> 10 down.
    assert data.y_train[:8].tolist() == [1, 0, 0, 0, 1, 0, 0, 0]
    assert data.y_train.dtype == np.int64 and data.X_train.dtype == np.float32
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) <= 39  # the last row has no next close


def test_the_scaler_is_fitted_on_the_training_split_only(prices, price_info):
    data = prepare_training_data(df=prices, dataset=price_info, spec=PRICE_SPEC)
    assert np.allclose(data.X_train.mean(axis=0), 0, atol=1e-4)
    assert np.allclose(data.X_train.std(axis=0), 1, atol=1e-3)
    fitted = data.preprocessor.fitted[-1]["columns"]
    everything = np.concatenate([data.X_train, data.X_val, data.X_test])
    # Fitted on all rows the means would be zero over everything; they are not.
    assert not np.allclose(everything.mean(axis=0), 0, atol=1e-4)
    assert set(fitted) == set(data.feature_names)


def test_tabular_classification_is_split_at_random_stratified_by_class():
    rng = np.random.default_rng(0)
    labels = np.array(["a"] * 150 + ["b"] * 50)
    df = pd.DataFrame({"x": rng.normal(size=200), "label": labels})
    info = DatasetInfo(task="classification", target_column="label")
    data = prepare_training_data(df=df, dataset=info, spec={"steps": []}, seed=1)
    assert data.classes == ["a", "b"]
    for y in (data.y_train, data.y_val, data.y_test):
        assert np.mean(y == 1) == pytest.approx(0.25, abs=0.02)
    again = prepare_training_data(df=df, dataset=info, spec={"steps": []}, seed=1)
    np.testing.assert_array_equal(data.X_train, again.X_train)
    other = prepare_training_data(df=df, dataset=info, spec={"steps": []}, seed=2)
    assert not np.array_equal(data.X_train, other.X_train)
    assert data.groups_train is None and data.time_train is None


def test_a_same_row_target_is_never_a_feature():
    df = pd.DataFrame({"x": np.arange(50.0), "y": np.arange(50.0) * 2})
    data = prepare_training_data(df=df, dataset=DatasetInfo(task="regression", target_column="y"), spec={"steps": []})
    assert data.feature_names == ["x"]
    assert data.preprocessor.raw_columns == ["x"]


def test_a_step_reading_the_same_row_target_is_refused_but_its_lags_are_allowed():
    df = pd.DataFrame(
        {
            "date": pd.bdate_range("2024-01-01", periods=50).strftime("%Y-%m-%d"),
            "x": np.arange(50.0),
            "y": np.arange(50.0),
        }
    )
    info = DatasetInfo(task="regression", target_column="y", time_column="date")
    with pytest.raises(SpecError) as error:
        prepare_training_data(
            df=df, dataset=info, spec={"steps": [{"op": "rolling", "columns": ["y"], "windows": [3]}]}
        )
    assert error.value.step == 0 and error.value.key == "columns"
    data = prepare_training_data(df=df, dataset=info, spec={"steps": [{"op": "lags", "columns": ["y"], "lags": [1]}]})
    assert "y_lag1" in data.feature_names and "y" in data.preprocessor.raw_columns


def test_a_classification_with_one_class_in_training_is_refused():
    df = pd.DataFrame({"x": np.arange(30.0), "label": ["a"] * 30})
    with pytest.raises(DataError, match="single class"):
        prepare_training_data(
            df=df, dataset=DatasetInfo(task="classification", target_column="label"), spec={"steps": []}
        )


def test_fractions_must_be_positive_and_sum_to_one(prices, price_info):
    with pytest.raises(DataError, match="fractions"):
        prepare_training_data(df=prices, dataset=price_info, spec=PRICE_SPEC, fractions=(0.8, 0.3, 0.1))
