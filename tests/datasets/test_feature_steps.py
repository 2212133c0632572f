"""Each feature step on small frames whose answers are worked out by hand (or by pandas)."""

import numpy as np
import pandas as pd
import pytest

from apps.datasets.preprocessing import DatasetInfo, normalize_spec
from apps.datasets.preprocessing.frame import build_frame, column_kind
from apps.datasets.preprocessing.kernels import ema_window
from apps.datasets.preprocessing.pipeline import run_steps

SERIES = DatasetInfo(task="regression", target_column="y", time_column="date")
PANEL = DatasetInfo(task="regression", target_column="y", time_column="date", entity_column="ticker")


def features(df: pd.DataFrame, steps: list, info=SERIES, fit_rows=None) -> pd.DataFrame:
    """Runs the steps over every row (stateful steps fit on `fit_rows`, default all) in frame order."""
    spec = normalize_spec({"steps": steps})
    columns = [c for c in df.columns if c not in (info.time_column, info.entity_column)]
    frame = build_frame(
        df,
        columns=columns,
        time_column=info.time_column,
        entity_column=info.entity_column,
        kinds={c: column_kind(df[c]) for c in columns},
    )
    rows = np.arange(frame.n) if fit_rows is None else np.flatnonzero(fit_rows)
    state, fitted = run_steps(frame, spec=spec, info=info, fit_rows=rows)
    out = pd.DataFrame({name: values for name, values in frame.columns.items() if values.dtype != object})
    out.attrs["fitted"] = fitted
    return out


def series(values, start="2024-01-01", **extra):
    n = len(values)
    return pd.DataFrame(
        {
            "date": pd.date_range(start, periods=n, freq="D").strftime("%Y-%m-%d"),
            "x": values,
            "y": np.arange(n, dtype=float),
            **extra,
        }
    )


def test_lags_shift_values_back_and_leave_the_first_rows_empty():
    out = features(series([1.0, 2.0, 3.0, 4.0]), [{"op": "lags", "columns": ["x"], "lags": [1, 2]}])
    np.testing.assert_array_equal(out["x_lag1"], [np.nan, 1, 2, 3])
    np.testing.assert_array_equal(out["x_lag2"], [np.nan, np.nan, 1, 2])


def test_lags_never_read_another_tickers_rows():
    df = pd.DataFrame(
        {
            "date": ["2024-01-01", "2024-01-02", "2024-01-03"] * 2,
            "ticker": ["A"] * 3 + ["B"] * 3,
            "x": [1.0, 2, 3, 10, 20, 30],
            "y": 0.0,
        }
    )
    out = features(df, [{"op": "lags", "columns": ["x"], "lags": [1]}], info=PANEL)
    # B's first row would see A's last value (3.0) if entities leaked into each other.
    np.testing.assert_array_equal(out["x_lag1"], [np.nan, 1, 2, np.nan, 10, 20])


def test_interleaved_rows_are_grouped_by_entity_and_ordered_by_time_before_computing():
    df = pd.DataFrame(
        {
            "date": ["2024-01-02", "2024-01-02", "2024-01-01", "2024-01-01"],
            "ticker": ["A", "B", "A", "B"],
            "x": [2.0, 20, 1, 10],
            "y": 0.0,
        }
    )
    out = features(df, [{"op": "returns", "columns": ["x"], "periods": [1]}], info=PANEL)
    np.testing.assert_allclose(out["x"], [1, 2, 10, 20])
    np.testing.assert_allclose(out["x_ret1"], [np.nan, 1.0, np.nan, 1.0])


def test_returns_and_log_returns_over_several_periods():
    out = features(
        series([100.0, 110.0, 99.0, 108.9]),
        [
            {"op": "returns", "columns": ["x"], "periods": [1, 2]},
            {"op": "log_returns", "columns": ["x"], "periods": [1]},
        ],
    )
    np.testing.assert_allclose(out["x_ret1"], [np.nan, 0.10, -0.10, 0.10], rtol=1e-5)
    np.testing.assert_allclose(out["x_ret2"], [np.nan, np.nan, -0.01, -0.01], rtol=1e-4)
    np.testing.assert_allclose(out["x_logret1"], [np.nan, np.log(1.1), np.log(0.9), np.log(1.1)], rtol=1e-5)


def test_a_return_from_a_zero_price_is_missing_not_infinite():
    out = features(series([0.0, 1.0, 2.0]), [{"op": "returns", "columns": ["x"]}])
    assert np.isnan(out["x_ret1"][1]) and out["x_ret1"][2] == pytest.approx(1.0)


def test_rolling_statistics_match_pandas_per_entity():
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "date": list(pd.date_range("2024-01-01", periods=30).strftime("%Y-%m-%d")) * 2,
            "ticker": ["A"] * 30 + ["B"] * 30,
            "x": rng.normal(100, 5, 60),
            "y": 0.0,
        }
    )
    out = features(
        df,
        [{"op": "rolling", "columns": ["x"], "windows": [5], "stats": ["mean", "std", "min", "max", "sum"]}],
        info=PANEL,
    )
    rolling = df.groupby("ticker")["x"].rolling(5)
    for stat in ("mean", "std", "min", "max", "sum"):
        expected = getattr(rolling, stat)().to_numpy()
        np.testing.assert_allclose(out[f"x_roll5_{stat}"], expected, rtol=2e-5, err_msg=stat)


def test_rsi_on_a_worked_example():
    # Changes: +1, -0.5, +1, +0.5, -1. Window 4 at row 4: gains 2.5, losses 0.5 -> 100 * 2.5 / 3 = 83.33;
    # at row 5: gains 1.5, losses 1.5 -> 50.
    out = features(series([10.0, 11.0, 10.5, 11.5, 12.0, 11.0]), [{"op": "rsi", "column": "x", "window": 4}])
    np.testing.assert_allclose(out["x_rsi4"], [np.nan] * 4 + [250 / 3, 50.0], rtol=1e-5)


def test_rsi_is_100_when_a_window_only_rose_and_50_when_nothing_moved():
    out = features(series([1.0, 2, 3, 4, 4, 4, 4]), [{"op": "rsi", "column": "x", "window": 3}])
    np.testing.assert_allclose(out["x_rsi3"][3:], [100.0, 100.0, 100.0 * 1 / 1, 50.0])


def test_macd_lines_are_pandas_ewm_over_the_truncated_window():
    rng = np.random.default_rng(2)
    x = 100 + np.cumsum(rng.normal(0, 1, 200))
    out = features(series(x), [{"op": "macd", "column": "x", "fast": 3, "slow": 6, "signal": 2}])
    slow_window, signal_window = ema_window(6), ema_window(2)
    first_line, first_signal = slow_window - 1, slow_window - 1 + signal_window - 1
    assert np.isnan(out["x_macd"][first_line - 1]) and not np.isnan(out["x_macd"][first_line])
    assert np.isnan(out["x_macd_signal"][first_signal - 1]) and not np.isnan(out["x_macd_signal"][first_signal])

    def ewm_last(values, span):
        return pd.Series(values[-ema_window(span) :]).ewm(span=span, adjust=True).mean().iloc[-1]

    for t in (first_line, 100, 199):
        expected = ewm_last(x[: t + 1], 3) - ewm_last(x[: t + 1], 6)
        assert out["x_macd"][t] == pytest.approx(expected, rel=1e-4, abs=1e-4)
    line = out["x_macd"].to_numpy(dtype=np.float64)
    for t in (first_signal, 150):
        assert out["x_macd_signal"][t] == pytest.approx(ewm_last(line[: t + 1], 2), rel=1e-4, abs=1e-4)
    np.testing.assert_allclose(out["x_macd_hist"], out["x_macd"] - out["x_macd_signal"], rtol=1e-6)


def test_macd_of_a_constant_price_is_zero():
    out = features(series([50.0] * 120), [{"op": "macd", "column": "x"}])
    valid = out.dropna()
    assert len(valid) and np.allclose(valid[["x_macd", "x_macd_signal", "x_macd_hist"]], 0, atol=1e-4)


def test_bollinger_percent_b_on_a_worked_example():
    # Window [1, 2, 3]: mean 2, population std sqrt(2/3); bands 2 -/+ 2 * 0.8165 = 0.367 / 3.633;
    # %B of 3 = (3 - 0.367) / 3.266 = 0.806. A flat window sits in the middle (0.5).
    out = features(
        series([1.0, 2.0, 3.0, 3.0, 3.0, 3.0]), [{"op": "bollinger", "column": "x", "window": 3, "num_std": 2}]
    )
    sd = np.sqrt(2 / 3)
    assert out["x_bb3_pctb"][2] == pytest.approx((3 - (2 - 2 * sd)) / (4 * sd), rel=1e-5)
    assert out["x_bb3_pctb"][5] == 0.5
    assert np.isnan(out["x_bb3_pctb"][1])


def test_calendar_features_from_the_time_column():
    df = pd.DataFrame({"date": ["2024-01-01", "2024-02-29", "2024-12-31"], "x": 1.0, "y": 0.0})
    out = features(
        df,
        [
            {
                "op": "calendar",
                "features": [
                    "dayofweek",
                    "day",
                    "month",
                    "quarter",
                    "year",
                    "dayofyear",
                    "is_month_start",
                    "is_month_end",
                ],
            }
        ],
    )
    assert out["date_dayofweek"].tolist() == [0, 3, 1]  # Monday, Thursday, Tuesday
    assert out["date_day"].tolist() == [1, 29, 31]
    assert out["date_month"].tolist() == [1, 2, 12]
    assert out["date_quarter"].tolist() == [1, 1, 4]
    assert out["date_year"].tolist() == [2024, 2024, 2024]
    assert out["date_dayofyear"].tolist() == [1, 60, 366]
    assert out["date_is_month_start"].tolist() == [1, 0, 0]
    assert out["date_is_month_end"].tolist() == [0, 1, 1]


def test_forward_fill_stops_at_its_limit_and_at_entity_boundaries():
    df = pd.DataFrame(
        {
            "date": [f"2024-01-0{i}" for i in range(1, 6)] * 2,
            "ticker": ["A"] * 5 + ["B"] * 5,
            "x": [1.0, np.nan, np.nan, np.nan, 5, np.nan, 7, np.nan, 9, 10],
            "y": 0.0,
        }
    )
    out = features(df, [{"op": "impute", "columns": ["x"], "strategy": "ffill", "limit": 2}], info=PANEL)
    np.testing.assert_array_equal(out["x"], [1, 1, 1, np.nan, 5, np.nan, 7, 7, 9, 10])


def test_mean_and_median_imputation_use_the_fitting_rows_only():
    df = series([1.0, 3.0, np.nan, 100.0, np.nan])
    fit = np.array([True, True, True, False, False])
    out = features(df, [{"op": "impute", "columns": ["x"], "strategy": "mean"}], fit_rows=fit)
    np.testing.assert_array_equal(out["x"], [1, 3, 2, 100, 2])  # 100 is not a training value
    out = features(series([1.0, 2.0, 10.0, np.nan]), [{"op": "impute", "columns": ["x"], "strategy": "median"}])
    assert out["x"][3] == 2.0


@pytest.mark.parametrize(
    "method,expected",
    [
        ("standard", [-1.0, 1.0, 3.0]),  # mean 2, std 1 over the first two rows [1, 3]
        ("minmax", [0.0, 1.0, 2.0]),  # min 1, range 2
        ("robust", [-1.0, 1.0, 3.0]),  # median 2, IQR 1 (1.5 .. 2.5)
    ],
)
def test_scaling_methods_fit_on_the_fitting_rows(method, expected):
    out = features(
        series([1.0, 3.0, 5.0]),
        [{"op": "scale", "columns": ["x"], "method": method}],
        fit_rows=np.array([True, True, False]),
    )
    np.testing.assert_allclose(out["x"], expected, rtol=1e-6)


def test_one_hot_encodes_training_categories_and_zeroes_unseen_ones():
    df = series([1.0, 2, 3, 4], colour=["red", "blue", "red", "green"])
    out = features(df, [{"op": "one_hot", "columns": ["colour"]}], fit_rows=np.array([True, True, True, False]))
    assert out.attrs["fitted"][0] == {"categories": {"colour": ["blue", "red"]}}
    np.testing.assert_array_equal(out["colour=blue"], [0, 1, 0, 0])
    np.testing.assert_array_equal(out["colour=red"], [1, 0, 1, 0])  # "green" was never seen in training
