"""The fitted preprocessor at serving time: same features as training, exactly `history_rows` of history."""

import json

import numpy as np
import pandas as pd
import pytest

from apps.datasets.demo import PRICE_FEATURES_V1
from apps.datasets.preprocessing import (
    DatasetInfo,
    FittedPreprocessor,
    InsufficientHistory,
    InvalidInput,
    prepare_training_data,
    spec_history_rows,
)


@pytest.fixture
def trained(prices, price_info):
    data = prepare_training_data(df=prices, dataset=price_info, spec=PRICE_FEATURES_V1)
    # As the registry stores it: JSON text beside the model.
    return data, FittedPreprocessor.from_dict(json.loads(json.dumps(data.preprocessor.to_dict())))


def test_serving_features_from_the_last_history_rows_equal_the_training_features_bit_for_bit(trained, prices):
    data, preprocessor = trained
    history = preprocessor.history_rows
    for ticker in ("AAA", "CCC"):
        rows = prices[prices.ticker == ticker]
        # The newest test row of this ticker, and what a client would send for it.
        mine = data.groups_test == ticker
        last_time = data.time_test[mine].max()
        expected = data.X_test[mine][data.time_test[mine] == last_time][0]
        position = int(np.flatnonzero(pd.to_datetime(rows.date).to_numpy() == last_time)[0])
        request = rows.iloc[position + 1 - history : position + 1][preprocessor.raw_columns]
        served, labels = preprocessor.serving_features(request.sample(frac=1, random_state=0))  # any row order
        assert labels == [ticker]
        assert served.to_numpy().dtype == np.float32
        np.testing.assert_array_equal(served.to_numpy()[0], expected)


def test_transform_gives_the_same_rows_as_training(trained, prices):
    data, preprocessor = trained
    features = preprocessor.transform(prices)
    complete = features.dropna()
    train_rows = complete.to_numpy()[: len(data.X_train)]
    # The training matrix is the first rows (time order) of each ticker that have full history and a label.
    by_ticker = prices.loc[complete.index, "ticker"].to_numpy()
    for ticker in ("AAA", "BBB"):
        np.testing.assert_array_equal(
            complete.to_numpy()[by_ticker == ticker][:5], data.X_train[data.groups_train == ticker][:5]
        )
    assert train_rows.shape[1] == len(data.feature_names)


def test_history_rows_is_the_longest_look_back_plus_the_current_row(price_info, prices):
    kinds = {
        "date": "text",
        "ticker": "text",
        "open": "numeric",
        "high": "numeric",
        "low": "numeric",
        "close": "numeric",
        "volume": "numeric",
    }
    dataset = price_info

    def history(steps):
        return spec_history_rows(
            {
                "steps": steps,
                "exclude": ["open", "high", "low", "volume"],
                "target": {"horizon": 1, "kind": "direction"},
            },
            dataset=dataset,
            kinds=kinds,
        )

    assert history([]) == 1
    assert history([{"op": "lags", "columns": ["close"], "lags": [1, 7, 3]}]) == 8
    assert history([{"op": "rolling", "columns": ["close"], "windows": [20]}]) == 20
    # A lag of a 1-period return reaches back 1 + 3 rows.
    assert (
        history([{"op": "returns", "columns": ["close"]}, {"op": "lags", "columns": ["close_ret1"], "lags": [3]}]) == 5
    )
    assert history([{"op": "rsi", "column": "close", "window": 14}]) == 15
    # MACD: slow EMA over 3*26 rows, then the signal EMA over 3*9 rows of the line.
    assert history([{"op": "macd", "column": "close"}]) == 78 + 27 - 1
    assert (
        history(
            [
                {"op": "impute", "columns": ["close"], "strategy": "ffill", "limit": 4},
                {"op": "lags", "columns": ["close"], "lags": [2]},
            ]
        )
        == 7
    )


def test_one_row_less_than_history_rows_is_refused_naming_needed_got_and_entity(trained, prices):
    _, preprocessor = trained
    history = preprocessor.history_rows
    request = pd.concat(
        [prices[prices.ticker == "AAA"].tail(history), prices[prices.ticker == "BBB"].tail(history - 1)]
    )
    with pytest.raises(InsufficientHistory) as error:
        preprocessor.serving_features(request)
    assert (error.value.needed, error.value.got, error.value.entity) == (history, history - 1, "BBB")
    # Without the check the features would be incomplete: the window really is needed.
    short = preprocessor.transform(prices[prices.ticker == "BBB"].tail(history - 1))
    assert short.iloc[-1].isna().any()


def test_more_history_than_needed_gives_the_same_features(trained, prices):
    _, preprocessor = trained
    history = preprocessor.history_rows
    exact, _ = preprocessor.serving_features(prices.groupby("ticker").tail(history))
    longer, labels = preprocessor.serving_features(prices.groupby("ticker").tail(history + 30))
    assert labels == ["AAA", "BBB", "CCC"]
    np.testing.assert_array_equal(exact.to_numpy(), longer.to_numpy())


def test_a_missing_column_or_a_word_in_a_numeric_column_is_invalid_input(trained, prices):
    _, preprocessor = trained
    request = prices.groupby("ticker").tail(preprocessor.history_rows)
    with pytest.raises(InvalidInput) as error:
        preprocessor.serving_features(request.drop(columns=["close"]))
    assert error.value.field == "close"
    broken = request.astype({"close": object})
    broken.iloc[5, broken.columns.get_loc("close")] = "n/a"
    with pytest.raises(InvalidInput) as error:
        preprocessor.serving_features(broken)
    assert error.value.field == "close" and "row 6" in error.value.message and "'n/a'" in error.value.message
    bad_date = request.copy()
    bad_date.iloc[0, bad_date.columns.get_loc("date")] = "yesterday"
    with pytest.raises(InvalidInput) as error:
        preprocessor.serving_features(bad_date)
    assert error.value.field == "date"


def test_a_missing_value_inside_the_window_is_reported_against_its_raw_column(trained, prices):
    _, preprocessor = trained
    request = prices.groupby("ticker").tail(preprocessor.history_rows).copy()
    request.loc[request.index[-1], "close"] = np.nan
    with pytest.raises(InvalidInput) as error:
        preprocessor.serving_features(request)
    assert error.value.field == "close"


def test_without_history_each_input_row_gets_its_own_features_in_input_order():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80), "target": rng.normal(size=80)})
    data = prepare_training_data(
        df=df,
        dataset=DatasetInfo(task="regression", target_column="target"),
        spec={"steps": [{"op": "scale", "columns": "*"}]},
    )
    preprocessor = FittedPreprocessor.from_dict(data.preprocessor.to_dict())
    assert preprocessor.history_rows == 1 and preprocessor.raw_columns == ["a", "b"]
    request = df[["b", "a"]].iloc[[7, 3]]
    served, labels = preprocessor.serving_features(request)
    assert labels == ["7", "3"]
    scale = preprocessor.fitted[0]["columns"]
    expected_a = (np.float32(df.a[7]) - np.float32(scale["a"][0])) * np.float32(1 / scale["a"][1])
    assert served["a"].iloc[0] == expected_a


def test_the_saved_form_is_plain_json_and_refuses_other_documents(trained):
    data, preprocessor = trained
    document = data.preprocessor.to_dict()
    assert json.loads(json.dumps(document)) == document
    with pytest.raises(ValueError):
        FittedPreprocessor.from_dict({"format": "pickle"})
    assert preprocessor.feature_names == data.feature_names
    assert preprocessor.raw_columns == ["date", "ticker", "close", "volume"]


def test_categories_and_imputed_values_are_served_as_trained():
    rng = np.random.default_rng(4)
    df = pd.DataFrame(
        {"size": rng.normal(10, 2, 90), "colour": rng.choice(["red", "blue"], 90), "label": rng.choice(["a", "b"], 90)}
    )
    df.loc[[3, 50], "size"] = np.nan
    spec = {
        "steps": [
            {"op": "impute", "columns": ["size"], "strategy": "median"},
            {"op": "one_hot", "columns": ["colour"]},
            {"op": "scale", "columns": ["size"]},
        ]
    }
    data = prepare_training_data(df=df, dataset=DatasetInfo(task="classification", target_column="label"), spec=spec)
    preprocessor = FittedPreprocessor.from_dict(json.loads(json.dumps(data.preprocessor.to_dict())))
    assert preprocessor.feature_names == ["size", "colour=blue", "colour=red"]
    assert preprocessor.raw_kinds == {"colour": "text", "size": "numeric"}
    request = pd.DataFrame({"size": [None, "12.5"], "colour": ["green", "red"]})  # JSON-ish: text numbers
    served, _ = preprocessor.serving_features(request)
    median = preprocessor.fitted[0]["values"]["size"]
    center, scale = preprocessor.fitted[2]["columns"]["size"]
    assert served["size"].iloc[0] == pytest.approx((median - center) / scale, rel=1e-5)
    assert served[["colour=blue", "colour=red"]].to_numpy().tolist() == [[0, 0], [0, 1]]
