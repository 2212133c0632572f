"""The working table of the feature pipeline: named float32 columns laid out entity by entity, each
entity's rows in time order, plus the bookkeeping (row position inside its entity) that lets window
kernels blank the rows whose window would reach into the previous entity.

`build_frame` reads a pandas DataFrame (training, the DataFrame API) or, on the prediction path, any
table of already checked columns (`columns`, `len()`, `table[name]` -> a float64 array or a list, as
apps.deployments.serving.inputs.CheckedRows): no DataFrame is built for a request, and both give the
same float32 columns because they start from the same float64 values."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import InvalidInput
from .kernels import DTYPE

NUMERIC = "numeric"
TEXT = "text"
DATETIME = "datetime"


def column_kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return NUMERIC
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return DATETIME
    return TEXT


def _row_label(df, position: int) -> str:
    # Row numbers as a person counts them in the file: first data row is 1.
    return str(position + 1)


def _at(values, position: int):
    return values.iloc[position] if isinstance(values, pd.Series) else values[position]


def to_float(series, *, name: str) -> np.ndarray:
    """Column as float32; text that is not a number raises InvalidInput naming the column and row.
    `series` may also be a checked column (float64 array or list of numbers) of a prediction request."""
    if not isinstance(series, pd.Series):
        try:
            # np.array copies: steps work in place on the frame's own arrays.
            return np.array(series, dtype=DTYPE)
        except (TypeError, ValueError):
            series = pd.Series(list(series), dtype=object)  # unchecked values: the general path names the row
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        # copy=True: steps work in place and must never write into the caller's DataFrame.
        return series.to_numpy(dtype=DTYPE, na_value=np.nan, copy=True)
    converted = pd.to_numeric(series, errors="coerce")
    bad = converted.isna().to_numpy() & series.notna().to_numpy()
    if bad.any():
        # Empty strings count as missing, not as garbage.
        text = series.astype("string")
        bad &= text.str.strip().fillna("").ne("").to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InvalidInput(name, f"row {_row_label(series, first)}: {_at(series, first)!r} is not a number")
    return converted.to_numpy(dtype=DTYPE, na_value=np.nan, copy=True)


def to_datetime_ns(series: pd.Series, *, name: str) -> np.ndarray:
    """Column as naive UTC datetime64[ns]; unparseable values raise InvalidInput with the row."""
    return parse_times(series, name=name)[0]


def parse_times(series, *, name: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(datetime64[ns] per row, code per row, distinct times) -- codes only when parsed from text, where
    dates repeat across entities and per-date work (calendar features) can be done once per date."""
    codes = parsed = None
    if not isinstance(series, pd.Series):
        series = np.asarray(series, dtype=object)
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = series
        if getattr(values.dtype, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        out = values.to_numpy(dtype="datetime64[ns]")
    else:
        # Dates repeat across entities: parse each distinct text once.
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        try:
            parsed = pd.to_datetime(pd.Index(uniques), utc=True, format="ISO8601")
        except (TypeError, ValueError, OverflowError):
            # Not all ISO 8601: let pandas guess each value's format (slower, so only as a fallback).
            try:
                parsed = pd.to_datetime(pd.Index(uniques), errors="coerce", utc=True, format="mixed")
            except (TypeError, ValueError, OverflowError):
                parsed = pd.DatetimeIndex([pd.NaT] * len(uniques), tz="UTC")
        parsed = parsed.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        bad_unique = np.isnat(parsed)
        if bad_unique.any():
            rows = np.flatnonzero(bad_unique[np.maximum(codes, 0)] & (codes >= 0))
            if len(rows):
                first = int(rows[0])
                raise InvalidInput(name, f"row {_row_label(series, first)}: {_at(series, first)!r} is not a date")
        out = np.empty(len(series), dtype="datetime64[ns]")
        if len(parsed):
            # A missing value's code -1 picks the last time here; it is set to NaT just below.
            np.take(parsed, codes, out=out)
        out[codes < 0] = np.datetime64("NaT")
    missing = np.isnat(out)
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise InvalidInput(name, f"row {_row_label(series, first)}: the time is empty")
    return out, codes, parsed


@dataclass
class Frame:
    """Columns are arrays the frame owns (never views of the caller's data, never shared between two
    names), so steps may update them in place."""

    n: int
    columns: dict[str, np.ndarray]
    kinds: dict[str, str]
    starts: np.ndarray  # first row of each entity
    sizes: np.ndarray  # rows of each entity
    order: np.ndarray | None  # original row position of each frame row (None: unchanged order)
    time: np.ndarray | None = None  # datetime64[ns] per row, when there is a time column
    entities: list = field(default_factory=list)  # entity value of each group (None for one series)
    time_codes: np.ndarray | None = None  # index into time_values per row, when times were parsed from text
    time_values: np.ndarray | None = None
    _pos: np.ndarray | None = None
    _group: np.ndarray | None = None
    _to_end: np.ndarray | None = None

    @property
    def pos(self) -> np.ndarray:
        """Position of each row inside its entity (0 for an entity's first row)."""
        if self._pos is None:
            self._pos = np.arange(self.n, dtype=np.int64) - np.repeat(self.starts, self.sizes)
        return self._pos

    def group_of_rows(self) -> np.ndarray:
        if self._group is None:
            self._group = np.repeat(np.arange(len(self.starts)), self.sizes)
        return self._group

    def rows_to_end(self) -> np.ndarray:
        """Rows after each row within its entity (0 for an entity's last row)."""
        if self._to_end is None:
            self._to_end = np.repeat(self.sizes - 1, self.sizes) - self.pos
        return self._to_end

    def edge_rows(self, count: int, *, last: bool = False) -> np.ndarray:
        """Boolean per row: among the first (or, with `last`, the last) `count` rows of its entity.
        Set entity by entity, without the per-row positions when entities are long."""
        if count * len(self.starts) >= self.n:
            return (self.rows_to_end() if last else self.pos) < count
        mask = np.zeros(self.n, dtype=bool)
        if count <= 0:
            return mask
        offsets = np.arange(count)
        if last:
            index = (self.starts + self.sizes - 1)[:, None] - offsets[None, :]
        else:
            index = self.starts[:, None] + offsets[None, :]
        mask[index[offsets[None, :] < self.sizes[:, None]]] = True
        return mask

    def blank_warmup(self, values: np.ndarray, lookback: int) -> np.ndarray:
        """NaN for the first `lookback` rows of every entity: their window starts before the entity."""
        if lookback <= 0 or self.n == 0:
            return values
        if len(self.starts) == 1:
            values[:lookback] = np.nan
            return values
        offsets = np.arange(lookback)
        index = self.starts[:, None] + offsets[None, :]
        valid = offsets[None, :] < self.sizes[:, None]
        values[index[valid]] = np.nan
        return values

    def numeric(self, name: str) -> np.ndarray:
        return self.columns[name]


def build_frame(
    df,
    *,
    columns: list[str],
    time_column: str = "",
    entity_column: str = "",
    kinds: dict[str, str] | None = None,
) -> Frame:
    """Pick `columns` out of `df`, typed (numeric -> float32) and ordered entity by entity, then by time.

    `kinds` fixes each column's kind (at serving time: as seen in training); without it kinds come
    from the dtypes. Rows are reordered only when the input is not already grouped and sorted.
    """
    for name in [c for c in (time_column, entity_column) if c] + list(columns):
        if name not in df.columns:
            raise InvalidInput(name, "missing column")
    n = len(df)
    time = time_codes = time_values = None
    if time_column:
        time, time_codes, time_values = parse_times(df[time_column], name=time_column)

    order = None
    entities: list = [None]
    starts = np.array([0], dtype=np.int64)
    sizes = np.array([n], dtype=np.int64)
    if entity_column:
        entity = df[entity_column]
        # A Series keeps its dtype (int keys compare at C speed); a request's list stays objects, so
        # 17 and "17" are never made equal.
        entity = entity.to_numpy() if isinstance(entity, pd.Series) else np.asarray(entity, dtype=object)
        missing = pd.isna(entity)
        if missing.any():
            first = int(np.flatnonzero(missing)[0])
            raise InvalidInput(entity_column, f"row {first + 1}: the entity is empty")
        starts, entities = _runs(entity)
        if starts is None or (time is not None and not _sorted_within(time, starts, n)):
            # Not grouped entity by entity in time order: sort (entities in order of appearance).
            codes, uniques = pd.factorize(entity)
            keys = (time.view(np.int64), codes) if time is not None else (np.arange(n), codes)
            order = np.lexsort(keys)
            starts, entities = _runs(entity[order])
        sizes = np.diff(np.r_[starts, n]).astype(np.int64)
        entities = [e.item() if hasattr(e, "item") else e for e in entities]
    elif time is not None and n > 1 and not bool(np.all(time[1:] >= time[:-1])):
        order = np.argsort(time, kind="stable")
    if order is not None and time is not None:
        time = time[order]
        if time_codes is not None:
            time_codes = time_codes[order]

    out_columns: dict[str, np.ndarray] = {}
    out_kinds: dict[str, str] = {}
    for name in columns:
        series = df[name]
        kind = (kinds or {}).get(name) or (column_kind(series) if isinstance(series, pd.Series) else NUMERIC)
        if kind == NUMERIC:
            values = to_float(series, name=name)
        elif kind == DATETIME:
            values = to_datetime_ns(series, name=name)
        elif isinstance(series, pd.Series):
            values = series.to_numpy(dtype=object, na_value=None)
        else:
            values = np.asarray(series, dtype=object)
        out_columns[name] = values[order] if order is not None else values
        out_kinds[name] = kind
    return Frame(
        n=n,
        columns=out_columns,
        kinds=out_kinds,
        starts=starts,
        sizes=sizes,
        order=order,
        time=time,
        entities=entities,
        time_codes=time_codes,
        time_values=time_values,
    )


def _runs(entity: np.ndarray) -> tuple[np.ndarray | None, list]:
    """Start row and value of each run of equal entities; (None, []) when an entity comes back later
    (the rows are not grouped)."""
    n = len(entity)
    if n == 0:
        return np.array([], dtype=np.int64), []
    changed = np.ones(n, dtype=bool)
    changed[1:] = entity[1:] != entity[:-1]
    starts = np.flatnonzero(changed).astype(np.int64)
    values = entity[starts].tolist()
    if len(set(values)) != len(values):
        return None, []
    return starts, values


def _sorted_within(time: np.ndarray, starts: np.ndarray, n: int) -> bool:
    if n < 2:
        return True
    steps = time[1:] >= time[:-1]
    steps[starts[1:] - 1] = True  # a new entity may start at any time
    return bool(steps.all())
