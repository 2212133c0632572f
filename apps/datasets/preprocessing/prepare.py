"""prepare_training_data: raw table + dataset + spec -> split float32 arrays and a fitted preprocessor."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import kernels as k
from .errors import DataError, InvalidInput, SpecError
from .fitted import FittedPreprocessor
from .frame import NUMERIC, Frame, build_frame, column_kind, to_float
from .gather import contiguous_runs
from .pipeline import run_steps
from .spec import DatasetInfo, normalize_spec, plan, target_name
from .splits import random_split, time_ordered_split

CLASSIFICATION = "classification"
DIRECTION_CLASSES = ["down", "up"]


@dataclass
class PreparedData:
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    groups_train: np.ndarray | None
    groups_val: np.ndarray | None
    groups_test: np.ndarray | None
    classes: list | None
    feature_names: list[str]
    preprocessor: FittedPreprocessor
    time_train: np.ndarray | None = None  # datetime64 per row when the data have a time column
    time_val: np.ndarray | None = None
    time_test: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def summary(self) -> dict:
        return {
            "train_rows": len(self.y_train),
            "val_rows": len(self.y_val),
            "test_rows": len(self.y_test),
            "features": len(self.feature_names),
            "history_rows": self.preprocessor.history_rows,
            "classes": self.classes,
        }


def prepare_training_data(
    *, df: pd.DataFrame, dataset, spec: dict, seed: int = 0, fractions=(0.7, 0.15, 0.15)
) -> PreparedData:
    """Builds features per the spec, splits (time-ordered for time series, stratified random
    otherwise), fits the stateful steps on the training rows only, and returns float32 arrays.

    Raises SpecError (spec does not fit the data) or DataError (data cannot be prepared)."""
    info = DatasetInfo.of(dataset)
    spec = normalize_spec(spec)
    if info.target_column not in df.columns:
        raise DataError(f"target column {info.target_column!r} is not in the data")
    kinds = {str(name): column_kind(df[name]) for name in df.columns}
    if info.time_column in kinds and kinds[info.time_column] == "text":
        kinds[info.time_column] = "datetime"
    checked = plan(spec, info, kinds)
    load = [c for c in df.columns if c in checked.needed_columns and c not in (info.time_column, info.entity_column)]
    try:
        frame = build_frame(
            df,
            columns=load,
            time_column=info.time_column,
            entity_column=info.entity_column,
            kinds={c: kinds[c] for c in load},
        )
    except InvalidInput as exc:
        raise DataError(str(exc)) from None

    y_all, classes, label_lead = _targets(frame, spec, info)
    history_rows = checked.history_rows
    candidates = np.isfinite(y_all)
    if history_rows > 1:
        candidates &= ~frame.edge_rows(history_rows - 1)
    candidates = np.flatnonzero(candidates)
    if len(candidates) == 0:
        raise DataError(f"no row has both a label and {history_rows} rows of history")

    ordered = bool(info.time_column) or history_rows > 1 or bool(spec.get("target"))
    if ordered:
        times = frame.time.view(np.int64) if frame.time is not None else frame.pos
        label_times = None
        if label_lead:
            label_times = k.shift(times.astype(np.float64), -label_lead)
            label_times[_rows_near_end(frame, label_lead)] = np.inf
        rows = time_ordered_split(candidates=candidates, times=times, fractions=fractions, label_times=label_times)
    else:
        labels = y_all if info.task == CLASSIFICATION else None
        rows = random_split(candidates=candidates, fractions=fractions, seed=seed, labels=labels)
    if info.task == CLASSIFICATION and len(np.unique(y_all[rows.train])) < 2:
        raise DataError("the training split holds a single class; a classifier needs at least two")

    state, fitted = run_steps(frame, spec=spec, info=info, fit_rows=rows.train)
    features = spec["features"] if spec["features"] is not None else state.candidates()
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise SpecError(f"feature {missing[0]!r} was not produced (is it a category seen in training?)", key="features")
    if not features:
        raise SpecError("the spec leaves no numeric feature column", key="steps")

    usable = np.ones(frame.n, dtype=bool)
    finite = np.empty(frame.n, dtype=bool)
    for name in features:
        usable &= np.isfinite(frame.columns[name], out=finite)
    split_rows = [r[usable[r]] for r in (rows.train, rows.val, rows.test)]
    for name, r in zip(("train", "validation", "test"), split_rows):
        if len(r) == 0:
            raise DataError(
                f"the {name} split has no row with every feature present; impute missing values or use a longer history"
            )

    raw_columns = _raw_columns(state, features, info)
    preprocessor = FittedPreprocessor(
        spec=spec,
        fitted=fitted,
        feature_names=list(features),
        raw_columns=raw_columns,
        raw_kinds={c: (state.kinds[c] if c != info.entity_column else "text") for c in raw_columns},
        history_rows=history_rows,
        task=info.task,
        target_column=info.target_column,
        target_name=target_name(spec, info),
        entity_column=info.entity_column,
        time_column=info.time_column,
        classes=classes,
        extra={"feature_sources": {f: sorted(state.sources.get(f, ())) for f in features}},
    )
    X = [_matrix(frame, features, r) for r in split_rows]
    y_dtype = np.int64 if info.task == CLASSIFICATION else np.float32
    y = [y_all[r].astype(y_dtype) for r in split_rows]
    groups = [_groups(frame, r) if info.entity_column else None for r in split_rows]
    times = [frame.time[r] if frame.time is not None else None for r in split_rows]
    return PreparedData(
        X_train=X[0],
        y_train=y[0],
        X_val=X[1],
        y_val=y[1],
        X_test=X[2],
        y_test=y[2],
        groups_train=groups[0],
        groups_val=groups[1],
        groups_test=groups[2],
        classes=classes,
        feature_names=list(features),
        preprocessor=preprocessor,
        time_train=times[0],
        time_val=times[1],
        time_test=times[2],
    )


def _rows_near_end(frame: Frame, lead: int) -> np.ndarray:
    """Rows whose `lead`-rows-ahead row belongs to the next entity (or does not exist)."""
    return frame.edge_rows(lead, last=True)


def _targets(frame: Frame, spec: dict, info: DatasetInfo) -> tuple[np.ndarray, list | None, int]:
    """Label per frame row (float64: class index or value, NaN when unknown), the classes, and how
    many rows ahead the label is read from."""
    raw = frame.columns[info.target_column]
    target = spec.get("target")
    if target:
        horizon = target["horizon"]
        unknown = _rows_near_end(frame, horizon)
        if target["kind"] == "direction":
            future = k.shift(raw, -horizon)
            y = (future > raw).astype(np.float64)
            unknown |= np.isnan(future)
            unknown |= np.isnan(raw)
            y[unknown] = np.nan
            return y, list(DIRECTION_CLASSES), horizon
        current = raw.astype(np.float64)
        future = k.shift(current, -horizon)
        future[unknown] = np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            if target["kind"] == "return":
                y = future / current - 1
            elif target["kind"] == "log_return":
                y = np.log(future / current)
            else:
                y = future
        y[~np.isfinite(y)] = np.nan
        return y, None, horizon
    if info.task == CLASSIFICATION:
        if raw.dtype == object:
            labels = pd.Series(raw, dtype=object).map(lambda v: None if v is None or str(v).strip() == "" else str(v))
            present = labels.notna().to_numpy()
            values = labels[present].to_numpy(dtype=str)
        else:
            present = np.isfinite(raw)
            values = raw[present].astype(np.float64)
        uniques, inverse = np.unique(values, return_inverse=True)
        if len(uniques) > 1000:
            raise DataError(
                f"target column {info.target_column!r} has {len(uniques)} distinct values; "
                "a classification target needs a few classes"
            )
        if raw.dtype == object:
            classes = [str(c) for c in uniques]
        else:
            # Whole-number labels (0.0/1.0 from a numeric column) read better as ints.
            classes = [int(c) if float(c).is_integer() else float(c) for c in uniques]
        y = np.full(frame.n, np.nan)
        y[present] = inverse
        return y, classes, 0
    if frame.kinds.get(info.target_column) != NUMERIC:
        try:
            raw = to_float(pd.Series(raw), name=info.target_column)
        except InvalidInput as exc:
            raise DataError(f"regression target {exc}") from None
    y = raw.astype(np.float64)
    y[~np.isfinite(y)] = np.nan
    return y, None, 0


def _raw_columns(state, features: list[str], info: DatasetInfo) -> list[str]:
    raw = set()
    for name in list(features) + sorted(state.consumed) + sorted(state.read):
        raw |= set(state.sources.get(name, ()))
    raw |= {c for c in (info.time_column, info.entity_column) if c}
    if state.direct_target not in state.read:
        # The label itself is never sent, unless past labels are features (lags of the target).
        raw.discard(state.direct_target)
    order = [c for c in (info.time_column, info.entity_column) if c]
    return order + sorted(raw - set(order))


def _matrix(frame: Frame, features: list[str], rows: np.ndarray, block: int = 8192) -> np.ndarray:
    """Rows x features, C-ordered. Runs of consecutive rows (time-ordered splits) are copied slice by
    slice straight into the matrix. Scattered rows are gathered a block at a time into a feature-major
    scratch and transposed while it is still in cache: writing one column at a time into a C-ordered
    matrix would stride through memory once per feature."""
    out = np.empty((len(rows), len(features)), dtype=np.float32)
    columns = [frame.columns[name] for name in features]
    runs = contiguous_runs(rows)
    if runs is not None:
        at = 0
        for start, length in zip(runs[0].tolist(), runs[1].tolist()):
            np.stack([values[start : start + length] for values in columns], axis=1, out=out[at : at + length])
            at += length
        return out
    scratch = np.empty((len(features), block), dtype=np.float32)
    for start in range(0, len(rows), block):
        chunk = rows[start : start + block]
        size = len(chunk)
        for j, values in enumerate(columns):
            np.take(values, chunk, out=scratch[j, :size])
        out[start : start + size] = scratch[:, :size].T
    return out


def _groups(frame: Frame, rows: np.ndarray) -> np.ndarray:
    """Entity of each (ascending) row: rows are grouped, so count them per entity and repeat."""
    entities = np.empty(len(frame.entities), dtype=object)
    entities[:] = frame.entities
    bounds = np.searchsorted(rows, np.r_[frame.starts, frame.n])
    return np.repeat(entities, np.diff(bounds))
