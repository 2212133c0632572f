"""The lean request path: a request's checked columns go to the preprocessor without a pandas
DataFrame, and its feature matrix equals the DataFrame path's and training's, bit for bit."""

import json

import numpy as np
import pandas as pd
import pytest

from apps.datasets.demo import PRICE_FEATURES_V1, TABLE_SPEC
from apps.datasets.generators import generate_ohlcv
from apps.datasets.preprocessing import DatasetInfo, FittedPreprocessor, InsufficientHistory, prepare_training_data
from apps.deployments.serving.inputs import CheckedRows, InputSpec, check_columns, parse_mlflow

from .conftest import classification_frame


def fitted(df, info, spec):
    data = prepare_training_data(df=df, dataset=info, spec=spec)
    # As the registry stores it: JSON beside the model.
    return data, FittedPreprocessor.from_dict(json.loads(json.dumps(data.preprocessor.to_dict())))


@pytest.fixture(scope="module")
def prices():
    return generate_ohlcv(tickers=("AAA", "BBB", "CCC"), days=160, seed=3)


@pytest.fixture(scope="module")
def price_model(prices):
    info = DatasetInfo(task="classification", target_column="close", time_column="date", entity_column="ticker")
    return fitted(prices, info, PRICE_FEATURES_V1)


def checked(pre: FittedPreprocessor, frame: pd.DataFrame) -> CheckedRows:
    """What the prediction path makes of a client's dataframe_records body."""
    spec = InputSpec.from_signature(
        {
            "raw_columns": pre.raw_columns,
            "entity_column": pre.entity_column,
            "time_column": pre.time_column,
            "history_rows": pre.history_rows,
        },
        kinds=pre.raw_kinds,
    )
    body = {"dataframe_records": json.loads(frame[pre.raw_columns].to_json(orient="records", date_format="iso"))}
    return check_columns(parse_mlflow(body, spec)[0], spec, known=set(spec.columns), max_rows=10_000)


def request_rows(prices, pre, tickers=("AAA", "CCC"), end=150):
    parts = [prices[prices.ticker == t].iloc[end - pre.history_rows : end] for t in tickers]
    return pd.concat(parts).sample(frac=1, random_state=1)  # any row order


def test_the_lean_history_matrix_equals_the_dataframe_path_and_training_bit_for_bit(prices, price_model):
    data, pre = price_model
    parts, expected = [], {}
    for ticker in ("AAA", "CCC"):
        rows = prices[prices.ticker == ticker]
        # The newest test row of this ticker, and the rows a client sends for it.
        mine = data.groups_test == ticker
        last_time = data.time_test[mine].max()
        expected[ticker] = data.X_test[mine][data.time_test[mine] == last_time][0]
        position = int(np.flatnonzero(pd.to_datetime(rows.date).to_numpy() == last_time)[0])
        parts.append(rows.iloc[position + 1 - pre.history_rows : position + 1])
    rows = checked(pre, pd.concat(parts).sample(frac=1, random_state=1))  # any row order
    lean, labels = pre.serving_matrix(rows)
    through_pandas, pandas_labels = pre.serving_features(rows.to_frame())
    assert lean.dtype == np.float32 and labels == pandas_labels and sorted(labels) == ["AAA", "CCC"]
    np.testing.assert_array_equal(lean, through_pandas.to_numpy())
    for i, ticker in enumerate(labels):
        np.testing.assert_array_equal(lean[i], expected[ticker])


def test_the_lean_matrix_of_a_table_without_history_equals_the_dataframe_path():
    frame = classification_frame(n=120, seed=5)
    _, pre = fitted(frame, DatasetInfo(task="classification", target_column="label"), TABLE_SPEC)
    rows = checked(pre, frame.iloc[:17])
    lean, labels = pre.serving_matrix(rows)
    through_pandas, pandas_labels = pre.serving_features(rows.to_frame())
    np.testing.assert_array_equal(lean, through_pandas.to_numpy())
    assert labels == pandas_labels == [str(i) for i in range(17)]


def test_the_lean_path_builds_no_dataframe(prices, price_model, monkeypatch):
    _, pre = price_model
    rows = checked(pre, request_rows(prices, pre))
    built = []
    original = pd.DataFrame.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "__init__", counting)
    pre.serving_matrix(rows)
    pre.serving_matrices([rows, rows])
    assert built == []


def test_many_requests_in_one_pass_equal_each_alone_and_a_short_one_fails_alone(prices, price_model):
    _, pre = price_model
    first = checked(pre, request_rows(prices, pre, ("AAA", "BBB"), end=120))
    same_ticker_later = checked(pre, request_rows(prices, pre, ("AAA",), end=150))
    short = checked(pre, prices[prices.ticker == "CCC"].iloc[: pre.history_rows - 1])
    together = pre.serving_matrices([first, short, same_ticker_later])
    assert isinstance(together[1], InsufficientHistory)
    for outcome, alone in (
        (together[0], pre.serving_matrix(first)),
        (together[2], pre.serving_matrix(same_ticker_later)),
    ):
        np.testing.assert_array_equal(outcome[0], alone[0])
        assert outcome[1] == alone[1]
    assert sorted(together[0][1]) == ["AAA", "BBB"] and together[2][1] == ["AAA"]
