"""The operations a feature spec may list. Each one

- cleans its parameters (`PARAMS`),
- declares what it reads and writes on a `State` (kinds, look-back in rows, raw sources), which is
  how a spec is validated against a dataset's columns and how `history_rows` is known,
- runs on a `Frame`, fitting its parameters on the training rows when it is stateful (impute mean
  or median, scale, one-hot) and reusing the fitted ones afterwards: one code path for training
  and serving.
"""

from dataclasses import dataclass, field

import numpy as np

from . import kernels as k
from .errors import SpecError
from .frame import NUMERIC, TEXT, Frame
from .gather import contiguous_runs, take_rows
from .params import Param, clean_params

ROLLING_STATS = ("mean", "std", "min", "max", "sum")
MAX_WINDOW = 1000


@dataclass
class State:
    """What the pipeline knows about each column: kind, look-back (rows of history) and raw sources."""

    kinds: dict[str, str]
    lookback: dict[str, int] = field(default_factory=dict)
    sources: dict[str, frozenset] = field(default_factory=dict)
    consumed: set = field(default_factory=set)
    reserved: set = field(default_factory=set)  # time, entity and a same-row target: never features
    exclude: set = field(default_factory=set)
    time_column: str = ""
    direct_target: str = ""
    read: set = field(default_factory=set)  # columns some step reads

    def __post_init__(self):
        for name in self.kinds:
            self.lookback.setdefault(name, 0)
            self.sources.setdefault(name, frozenset([name]))

    def require(self, name, *, step, key, kinds=(NUMERIC,)):
        self.read.add(name)
        if name not in self.kinds:
            raise SpecError(f"unknown column {name!r}", step=step, key=key)
        if self.kinds[name] not in kinds:
            raise SpecError(f"column {name!r} is {self.kinds[name]}, need {' or '.join(kinds)}", step=step, key=key)

    def add(self, name, *, kind=NUMERIC, lookback=0, sources=frozenset(), step=None, key=None):
        if name in self.kinds and step is not None:
            raise SpecError(f"would overwrite existing column {name!r}", step=step, key=key)
        self.kinds[name] = kind
        self.lookback[name] = lookback
        self.sources[name] = frozenset(sources)

    def candidates(self) -> list[str]:
        """Numeric columns that become features unless the spec lists its own."""
        return [
            name
            for name, kind in self.kinds.items()
            if kind == NUMERIC and name not in self.reserved and name not in self.exclude and name not in self.consumed
        ]


class Step:
    op = ""
    PARAMS: dict[str, Param] = {}
    stateful = False
    reads_target_ok = False

    def __init__(self, index: int, params: dict):
        self.index = index
        self.params = params

    @classmethod
    def from_spec(cls, index: int, raw: dict) -> "Step":
        return cls(index, clean_params(cls.PARAMS, raw, step=index))

    def to_spec(self) -> dict:
        return {"op": self.op, **self.params}

    def _columns(self, state: State, key="columns", kinds=(NUMERIC,)) -> list[str]:
        names = self.params[key] if isinstance(self.params[key], list) else [self.params[key]]
        for name in names:
            state.require(name, step=self.index, key=key, kinds=kinds)
            if name == state.direct_target and not self.reads_target_ok:
                raise SpecError(
                    f"reads the target column {name!r} at the same row (leakage); only 'lags' may use it",
                    step=self.index,
                    key=key,
                )
        return names

    def declare(self, state: State) -> None:
        raise NotImplementedError

    def run(self, frame: Frame, state: State, fitted: dict | None, fit_rows: np.ndarray | None) -> dict | None:
        raise NotImplementedError


def _finite(values: np.ndarray) -> np.ndarray:
    np.copyto(values, np.nan, where=np.isinf(values))
    return values


class Lags(Step):
    op = "lags"
    reads_target_ok = True
    PARAMS = {"columns": Param("columns", required=True), "lags": Param("ints", required=True, low=1, high=MAX_WINDOW)}

    def _outputs(self):
        return [(c, lag, f"{c}_lag{lag}") for c in self.params["columns"] for lag in self.params["lags"]]

    def declare(self, state):
        self._columns(state)
        for column, lag, name in self._outputs():
            state.add(
                name, lookback=state.lookback[column] + lag, sources=state.sources[column], step=self.index, key="lags"
            )

    def run(self, frame, state, fitted, fit_rows):
        for column, lag, name in self._outputs():
            frame.columns[name] = frame.blank_warmup(k.shift(frame.columns[column], lag), lag)
        return None


class Returns(Step):
    op = "returns"
    log = False
    PARAMS = {"columns": Param("columns", required=True), "periods": Param("ints", default=[1], low=1, high=MAX_WINDOW)}

    def _outputs(self):
        tag = "logret" if self.log else "ret"
        return [(c, p, f"{c}_{tag}{p}") for c in self.params["columns"] for p in self.params["periods"]]

    def declare(self, state):
        self._columns(state)
        for column, period, name in self._outputs():
            state.add(
                name,
                lookback=state.lookback[column] + period,
                sources=state.sources[column],
                step=self.index,
                key="periods",
            )

    def run(self, frame, state, fitted, fit_rows):
        for column, period, name in self._outputs():
            x = frame.columns[column]
            ratio = np.full_like(x, np.nan)
            if period < len(x):
                with np.errstate(divide="ignore", invalid="ignore"):
                    np.divide(x[period:], x[:-period], out=ratio[period:])
                    if self.log:
                        np.log(ratio, out=ratio)
                    else:
                        ratio -= k.DTYPE(1)
            frame.columns[name] = frame.blank_warmup(_finite(ratio), period)
        return None


class LogReturns(Returns):
    op = "log_returns"
    log = True


class Rolling(Step):
    op = "rolling"
    PARAMS = {
        "columns": Param("columns", required=True),
        "windows": Param("ints", required=True, low=2, high=MAX_WINDOW),
        "stats": Param("enums", default=["mean", "std"], choices=ROLLING_STATS),
    }
    KERNELS = {
        "mean": k.window_mean,
        "std": k.window_std,
        "min": k.window_min,
        "max": k.window_max,
        "sum": k.window_sum,
    }

    def _outputs(self):
        return [
            (c, w, s, f"{c}_roll{w}_{s}")
            for c in self.params["columns"]
            for w in self.params["windows"]
            for s in self.params["stats"]
        ]

    def declare(self, state):
        self._columns(state)
        for column, window, _, name in self._outputs():
            state.add(
                name,
                lookback=state.lookback[column] + window - 1,
                sources=state.sources[column],
                step=self.index,
                key="windows",
            )

    def run(self, frame, state, fitted, fit_rows):
        stats = self.params["stats"]
        for column in self.params["columns"]:
            x = frame.columns[column]
            # Mean and std share their window sums, and every window the shorter sums.
            both = k.window_means_stds(x, self.params["windows"]) if "std" in stats else {}
            for window in self.params["windows"]:
                values = {}
                if window in both:
                    values["mean"], values["std"] = both.pop(window)
                for stat in stats:
                    out = values[stat] if stat in values else self.KERNELS[stat](x, window)
                    frame.columns[f"{column}_roll{window}_{stat}"] = frame.blank_warmup(out, window - 1)
        return None


class Impute(Step):
    """Fill missing values: the training rows' mean or median, or the last value seen within `limit`
    rows of the same entity (forward fill)."""

    op = "impute"
    stateful = True
    PARAMS = {
        "columns": Param("columns_or_all", default="*"),
        "strategy": Param("enum", required=True, choices=("mean", "median", "ffill")),
        "limit": Param("int", default=5, low=1, high=MAX_WINDOW),
    }

    def _targets(self, state):
        if self.params["columns"] == "*":
            return state.candidates()
        return self._columns(state)

    def declare(self, state):
        columns = self._targets(state)
        if self.params["strategy"] == "ffill":
            for column in columns:
                state.lookback[column] += self.params["limit"]

    def run(self, frame, state, fitted, fit_rows):
        if self.params["strategy"] == "ffill":
            fitted = fitted or {"columns": self._targets(state)}
            for column in fitted["columns"]:
                frame.columns[column] = self._ffill(frame, frame.columns[column])
            return fitted
        if fitted is None:
            reducer = np.nanmean if self.params["strategy"] == "mean" else np.nanmedian
            values = {}
            for column in self._targets(state):
                sample = np.take(frame.columns[column], fit_rows)
                finite = sample[np.isfinite(sample)]
                values[column] = float(reducer(finite.astype(np.float64))) if len(finite) else 0.0
            fitted = {"values": values}
        for column, value in fitted["values"].items():
            x = frame.columns[column]
            np.copyto(x, k.DTYPE(value), where=np.isnan(x))
        return fitted

    def _ffill(self, frame, x):
        out = x.copy()
        pos = frame.pos
        for lag in range(1, self.params["limit"] + 1):
            missing = np.isnan(out)
            if not missing.any():
                break
            missing &= pos >= lag
            source = np.flatnonzero(missing)
            out[source] = x[source - lag]
        return out


class Scale(Step):
    op = "scale"
    stateful = True
    PARAMS = {
        "columns": Param("columns_or_all", default="*"),
        "method": Param("enum", default="standard", choices=("standard", "minmax", "robust")),
    }

    def declare(self, state):
        if self.params["columns"] != "*":
            self._columns(state)

    def run(self, frame, state, fitted, fit_rows):
        if fitted is None:
            columns = state.candidates() if self.params["columns"] == "*" else self.params["columns"]
            # One sample buffer for every column: fewer fresh pages to fault in.
            sample = np.empty(len(fit_rows), dtype=k.DTYPE)
            scratch = np.empty_like(sample)
            runs = contiguous_runs(fit_rows)
            fitted = {"columns": {}}
            for column in columns:
                take_rows(frame.columns[column], fit_rows, runs=runs, out=sample)
                fitted["columns"][column] = self._fit(sample, scratch)
        for column, (center, scale) in fitted["columns"].items():
            # In place: every frame column is an array of the frame's own (Frame's contract).
            x = frame.columns[column]
            x -= k.DTYPE(center)
            x *= k.DTYPE(1.0 / scale)
        return fitted

    def _fit(self, sample, scratch):
        finite = np.isfinite(sample)
        if not finite.all():
            sample = sample[finite]
            scratch = scratch[: len(sample)]
        if not len(sample):
            return [0.0, 1.0]
        method = self.params["method"]
        if method == "standard":
            # numpy sums float32 pairwise: accurate to a few ulps without a float64 copy.
            center = float(sample.mean())
            deviations = np.subtract(sample, np.float32(center), out=scratch)
            scale = float(np.sqrt(np.dot(deviations, deviations) / len(deviations)))
        elif method == "minmax":
            center = float(sample.min())
            scale = float(sample.max()) - center
        else:
            q1, median, q3 = np.percentile(sample.astype(np.float64), [25, 50, 75])
            center, scale = median, q3 - q1
        # A constant column stays constant instead of dividing by zero.
        return [float(center), float(scale) if scale > 0 else 1.0]


class OneHot(Step):
    """One 0/1 column per category seen in the training rows (the most frequent `max_categories`);
    unseen categories at serving time get all zeros."""

    op = "one_hot"
    stateful = True
    PARAMS = {
        "columns": Param("columns", required=True),
        "max_categories": Param("int", default=30, low=1, high=500),
    }

    def declare(self, state):
        for column in self._columns(state, kinds=(TEXT, NUMERIC)):
            state.consumed.add(column)

    def run(self, frame, state, fitted, fit_rows):
        if fitted is None:
            fitted = {"categories": {}}
            for column in self.params["columns"]:
                labels = _labels(np.take(frame.columns[column], fit_rows))
                labels = labels[labels != ""]
                values, counts = np.unique(labels, return_counts=True)
                top = values[np.argsort(-counts, kind="stable")[: self.params["max_categories"]]]
                fitted["categories"][column] = sorted(top.tolist())
        for column, categories in fitted["categories"].items():
            labels = _labels(frame.columns[column])
            for category in categories:
                name = f"{column}={category}"
                frame.columns[name] = (labels == category).astype(k.DTYPE)
                if name not in state.kinds:
                    state.add(name, sources=state.sources[column])
        return fitted


def _labels(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        return np.array(["" if v is None else str(v) for v in values], dtype=str)
    labels = values.astype(str)
    labels[np.isnan(values)] = ""
    return labels
