"""Price indicators and calendar features (the steps that know about markets and dates)."""

import numpy as np
import pandas as pd

from . import kernels as k
from .errors import SpecError
from .frame import DATETIME, TEXT, parse_times
from .params import Param
from .steps import MAX_WINDOW, Step

CALENDAR_FEATURES = ("dayofweek", "day", "month", "quarter", "year", "dayofyear", "is_month_start", "is_month_end")


class Rsi(Step):
    """Relative strength index over `window` price changes with simple averages of gains and losses
    (Cutler's RSI; its first value is Wilder's, whose first average is also a simple one)."""

    op = "rsi"
    PARAMS = {"column": Param("column", required=True), "window": Param("int", default=14, low=2, high=MAX_WINDOW)}

    @property
    def name(self):
        return f"{self.params['column']}_rsi{self.params['window']}"

    def declare(self, state):
        (column,) = self._columns(state, key="column")
        state.add(
            self.name,
            lookback=state.lookback[column] + self.params["window"],
            sources=state.sources[column],
            step=self.index,
            key="window",
        )

    def run(self, frame, state, fitted, fit_rows):
        x = frame.columns[self.params["column"]]
        n = self.params["window"]
        delta = np.empty_like(x)
        delta[:1] = np.nan
        np.subtract(x[1:], x[:-1], out=delta[1:])
        gains = k.window_sum(np.maximum(delta, 0), n, consume=True)
        np.negative(delta, out=delta)
        np.maximum(delta, 0, out=delta)
        total = k.window_sum(delta, n, consume=True)
        total += gains
        # In place, the same operations as 100 * gains / total.
        rsi = gains
        with np.errstate(divide="ignore", invalid="ignore"):
            rsi *= k.DTYPE(100)
            rsi /= total
        # No movement at all in the window: neither overbought nor oversold.
        rsi[total == 0] = 50
        frame.columns[self.name] = frame.blank_warmup(rsi, n)
        return None


class Macd(Step):
    """MACD line (EMA fast - EMA slow), its signal line (EMA of the line) and the histogram, with
    EMAs truncated to 3 spans (kernels.truncated_ema) so that a bounded history reproduces them."""

    op = "macd"
    PARAMS = {
        "column": Param("column", required=True),
        "fast": Param("int", default=12, low=2, high=MAX_WINDOW // 3),
        "slow": Param("int", default=26, low=3, high=MAX_WINDOW // 3),
        "signal": Param("int", default=9, low=2, high=MAX_WINDOW // 3),
    }

    @classmethod
    def from_spec(cls, index, raw):
        step = super().from_spec(index, raw)
        if step.params["fast"] >= step.params["slow"]:
            raise SpecError("must be smaller than 'slow'", step=index, key="fast")
        return step

    def _names(self):
        c = self.params["column"]
        return f"{c}_macd", f"{c}_macd_signal", f"{c}_macd_hist"

    def _lookbacks(self):
        line = k.ema_window(self.params["slow"]) - 1
        return line, line + k.ema_window(self.params["signal"]) - 1

    def declare(self, state):
        (column,) = self._columns(state, key="column")
        line, signal = self._lookbacks()
        base = state.lookback[column]
        macd, sig, hist = self._names()
        state.add(macd, lookback=base + line, sources=state.sources[column], step=self.index, key="slow")
        state.add(sig, lookback=base + signal, sources=state.sources[column], step=self.index, key="signal")
        state.add(hist, lookback=base + signal, sources=state.sources[column], step=self.index, key="signal")

    def run(self, frame, state, fitted, fit_rows):
        x = frame.columns[self.params["column"]]
        line_lb, signal_lb = self._lookbacks()
        line = k.truncated_ema(x, self.params["fast"])
        line -= k.truncated_ema(x, self.params["slow"])
        frame.blank_warmup(line, line_lb)
        signal = frame.blank_warmup(k.truncated_ema(line, self.params["signal"]), signal_lb)
        macd, sig, hist = self._names()
        frame.columns[macd] = line
        frame.columns[sig] = signal
        frame.columns[hist] = line - signal
        return None


class Bollinger(Step):
    """Bollinger %B: where the value sits between the bands mean -/+ num_std * std (population std,
    as Bollinger defines it): 0 at the lower band, 1 at the upper one."""

    op = "bollinger"
    PARAMS = {
        "column": Param("column", required=True),
        "window": Param("int", default=20, low=2, high=MAX_WINDOW),
        "num_std": Param("number", default=2.0, low=0.1, high=10),
    }

    @property
    def name(self):
        return f"{self.params['column']}_bb{self.params['window']}_pctb"

    def declare(self, state):
        (column,) = self._columns(state, key="column")
        state.add(
            self.name,
            lookback=state.lookback[column] + self.params["window"] - 1,
            sources=state.sources[column],
            step=self.index,
            key="window",
        )

    def run(self, frame, state, fitted, fit_rows):
        x = frame.columns[self.params["column"]]
        w = self.params["window"]
        mean, width = k.window_mean_std(x, w, ddof=0)
        width *= k.DTYPE(self.params["num_std"])
        # In place, the same operations as (x - (mean - width)) / (width + width).
        pctb = np.subtract(mean, width, out=mean)
        np.subtract(x, pctb, out=pctb)
        np.add(width, width, out=width)
        with np.errstate(divide="ignore", invalid="ignore"):
            pctb /= width
        # width + width is 0 exactly where width is.
        pctb[width == 0] = 0.5
        frame.columns[self.name] = frame.blank_warmup(pctb, w - 1)
        return None


class Calendar(Step):
    op = "calendar"
    PARAMS = {
        "column": Param("column"),
        "features": Param("enums", default=["dayofweek", "month"], choices=CALENDAR_FEATURES),
    }

    def _column(self, state):
        column = self.params["column"] or state.time_column
        if not column:
            raise SpecError("no date column: name one, or set the dataset's time column", step=self.index, key="column")
        return column

    def declare(self, state):
        column = self._column(state)
        state.require(column, step=self.index, key="column", kinds=(DATETIME, TEXT))
        for feature in self.params["features"]:
            state.add(f"{column}_{feature}", sources=state.sources[column], step=self.index, key="features")

    def run(self, frame, state, fitted, fit_rows):
        column = self._column(state)
        if column == state.time_column and frame.time is not None:
            values, codes, distinct = frame.time, frame.time_codes, frame.time_values
        else:
            values, codes, distinct = parse_times(pd.Series(frame.columns[column]), name=column)
        if codes is not None and distinct is not None and len(distinct) * 4 < len(values):
            # Dates repeat across entities: compute each once and spread by code.
            parts = calendar_parts(distinct, self.params["features"])
            for feature, part in parts.items():
                frame.columns[f"{column}_{feature}"] = part.astype(k.DTYPE)[codes]
        else:
            for feature, part in calendar_parts(values, self.params["features"]).items():
                frame.columns[f"{column}_{feature}"] = part.astype(k.DTYPE)
        return None


def calendar_parts(values: np.ndarray, features: list[str]) -> dict[str, np.ndarray]:
    days = values.astype("datetime64[D]")
    months = values.astype("datetime64[M]")
    years = values.astype("datetime64[Y]")
    parts = {
        # 1970-01-01 was a Thursday; Monday is 0 as in pandas.
        "dayofweek": lambda: (days.astype(np.int64) + 3) % 7,
        "day": lambda: (days - months.astype("datetime64[D]")).astype(np.int64) + 1,
        "month": lambda: months.astype(np.int64) % 12 + 1,
        "quarter": lambda: (months.astype(np.int64) % 12) // 3 + 1,
        "year": lambda: years.astype(np.int64) + 1970,
        "dayofyear": lambda: (days - years.astype("datetime64[D]")).astype(np.int64) + 1,
        "is_month_start": lambda: days == months.astype("datetime64[D]"),
        "is_month_end": lambda: (days + 1).astype("datetime64[M]") != months,
    }
    return {feature: parts[feature]() for feature in features}
