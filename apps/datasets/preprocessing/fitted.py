"""The fitted preprocessor: what training learned, saved as JSON beside the model and used at serving."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import InsufficientHistory, InvalidInput
from .frame import Frame, build_frame
from .pipeline import run_steps
from .spec import DatasetInfo

FORMAT = "mlops-portal/fitted-preprocessor"
FORMAT_VERSION = 1


@dataclass
class FittedPreprocessor:
    spec: dict
    fitted: list  # per step: fitted parameters (dict) or None
    feature_names: list[str]
    raw_columns: list[str]  # what a client must send (time and entity included, target excluded)
    raw_kinds: dict[str, str]
    history_rows: int
    task: str
    target_column: str
    target_name: str
    entity_column: str = ""
    time_column: str = ""
    classes: list | None = None
    extra: dict = field(default_factory=dict)

    @property
    def info(self) -> DatasetInfo:
        return DatasetInfo(
            task=self.task,
            target_column=self.target_column,
            time_column=self.time_column,
            entity_column=self.entity_column,
        )

    @property
    def needs_history(self) -> bool:
        return self.history_rows > 1

    def to_dict(self) -> dict:
        """Plain JSON types only; `from_dict(to_dict())` transforms identically."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "spec": self.spec,
            "fitted": self.fitted,
            "feature_names": list(self.feature_names),
            "raw_columns": list(self.raw_columns),
            "raw_kinds": dict(self.raw_kinds),
            "history_rows": int(self.history_rows),
            "task": self.task,
            "target_column": self.target_column,
            "target_name": self.target_name,
            "entity_column": self.entity_column,
            "time_column": self.time_column,
            "classes": self.classes,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "FittedPreprocessor":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not a fitted preprocessor document")
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"fitted preprocessor format {data.get('format_version')!r} is not supported")
        fields = {
            k: data[k]
            for k in (
                "spec",
                "fitted",
                "feature_names",
                "raw_columns",
                "raw_kinds",
                "history_rows",
                "task",
                "target_column",
                "target_name",
                "entity_column",
                "time_column",
                "classes",
            )
        }
        return cls(**fields, extra=data.get("extra") or {})

    def _frame(self, df) -> Frame:
        """`df`: a DataFrame, or a prediction request's checked columns (see frame.build_frame)."""
        if not isinstance(df, pd.DataFrame) and not hasattr(df, "columns"):
            raise InvalidInput("rows", "expected a table of rows")
        for column in self.raw_columns:
            if column not in df.columns:
                raise InvalidInput(column, "missing column")
        value_columns = [c for c in self.raw_columns if c not in (self.time_column, self.entity_column)]
        return build_frame(
            df,
            columns=value_columns,
            time_column=self.time_column,
            entity_column=self.entity_column,
            kinds=self.raw_kinds,
        )

    def _features(self, frame: Frame) -> list[np.ndarray]:
        run_steps(frame, spec=self.spec, info=self.info, fitted=self.fitted)
        return [frame.columns[name] for name in self.feature_names]

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """Feature rows for every input row, ordered entity by entity then by time (the index keeps
        the input's labels). Rows without enough history hold NaN."""
        frame = self._frame(df)
        columns = self._features(frame)
        index = df.index if frame.order is None else df.index[frame.order]
        # One array per column, not copied into a 2-D block.
        return pd.DataFrame(dict(zip(self.feature_names, columns)), index=index, copy=False)

    def serving_features(self, df: pd.DataFrame) -> tuple[pd.DataFrame, list]:
        """Feature rows to predict on and a label for each (its entity, else its time, else its row).

        With history (history_rows > 1): one row per entity, its latest, computed from exactly its last
        `history_rows` rows; fewer raises InsufficientHistory. Without: one row per input row, in
        input order."""
        matrix, labels = self.serving_matrix(df)
        return pd.DataFrame(matrix, columns=list(self.feature_names)), labels

    def serving_matrix(self, table) -> tuple[np.ndarray, list]:
        """serving_features as a float32 matrix (columns in `feature_names` order), without building
        a DataFrame: `table` is a DataFrame or a request's checked columns (frame.build_frame)."""
        if len(table) == 0:
            raise InvalidInput("rows", "no rows were sent")
        frame = self._frame(table)
        if self.needs_history:
            frame = self._latest_windows(frame)[0]
            columns = self._features(frame)
            return self._history_rows(table, frame, columns, 0, len(frame.starts))
        columns = self._features(frame)
        inverse = np.empty(frame.n, dtype=np.int64)
        if frame.order is None:
            inverse = np.arange(frame.n)
        else:
            inverse[frame.order] = np.arange(frame.n)
        if self.entity_column:
            labels = [str(v) for v in _column_values(table, self.entity_column)]
        elif self.time_column:
            labels = [str(v) for v in _column_values(table, self.time_column)]
        else:
            labels = [str(v) for v in _index_values(table)]
        matrix = np.column_stack([c[inverse] for c in columns]).astype(np.float32, copy=False)
        self._check_finite(matrix, labels, per_row=True)
        return matrix, labels

    def serving_matrices(self, tables: list) -> list:
        """serving_matrix for the tables of many requests at once: for each, its (matrix, labels) or
        the InvalidInput / InsufficientHistory that is its answer alone.

        With history, each request's entities keep exactly their last `history_rows` rows and the
        windows of every request go through the steps together (one pass, not one per request): the
        steps compute every window inside its own entity (starts/sizes), so a window's features are
        the same alone or beside others, whichever request or entity sent them. Without history the
        rows are independent and the caller simply concatenates them (one serving_matrix call)."""
        out: list = [None] * len(tables)
        windows: list[tuple[int, Frame]] = []
        for i, table in enumerate(tables):
            try:
                if len(table) == 0:
                    raise InvalidInput("rows", "no rows were sent")
                if not self.needs_history:
                    out[i] = self.serving_matrix(table)
                    continue
                windows.append((i, self._latest_windows(self._frame(table))[0]))
            except (InvalidInput, InsufficientHistory) as exc:
                out[i] = exc
        if not windows:
            return out
        combined = _concat_frames([w for _, w in windows])
        columns = self._features(combined)
        group = 0
        for i, window in windows:
            groups = len(window.starts)
            try:
                out[i] = self._history_rows(tables[i], combined, columns, group, group + groups)
            except InvalidInput as exc:
                out[i] = exc
            group += groups
        return out

    def _history_rows(
        self, table, frame: Frame, columns: list[np.ndarray], first: int, last: int
    ) -> tuple[np.ndarray, list]:
        """The feature rows of groups first..last-1 of a windows frame (each group's newest row)."""
        rows = frame.starts[first:last] + self.history_rows - 1
        if self.entity_column:
            labels = list(frame.entities[first:last])
        elif self.time_column:
            labels = [self._time_label(frame, int(rows[0]))]
        else:
            labels = [str(_index_values(table)[-1])]
        matrix = np.column_stack([c[rows] for c in columns]).astype(np.float32, copy=False)
        self._check_finite(matrix, labels, per_row=False)
        return matrix, labels

    def _check_finite(self, matrix: np.ndarray, labels: list, *, per_row: bool) -> None:
        bad = ~np.isfinite(matrix)
        if bad.any():
            row, col = (int(v) for v in np.argwhere(bad)[0])
            raise self._missing_value(self.feature_names[col], row if per_row else None, labels[row])

    def _latest_windows(self, frame: Frame) -> tuple[Frame, np.ndarray]:
        needed = self.history_rows
        for entity, size in zip(frame.entities, frame.sizes):
            if size < needed:
                raise InsufficientHistory(needed=needed, got=int(size), entity=entity)
        # Keep exactly each entity's last `history_rows` rows, as the features were defined on.
        index = (frame.starts + frame.sizes - needed)[:, None] + np.arange(needed)[None, :]
        index = index.ravel()
        groups = len(frame.starts)
        window = Frame(
            n=groups * needed,
            columns={name: values[index] for name, values in frame.columns.items()},
            kinds=dict(frame.kinds),
            starts=np.arange(groups, dtype=np.int64) * needed,
            sizes=np.full(groups, needed, dtype=np.int64),
            order=None,
            time=None if frame.time is None else frame.time[index],
            entities=list(frame.entities),
        )
        return window, window.starts + needed - 1

    @staticmethod
    def _time_label(frame: Frame, row: int) -> str:
        return str(pd.Timestamp(frame.time[row]).isoformat())

    def _missing_value(self, feature: str, row: int | None, label) -> InvalidInput:
        # Name the raw column the client should fix rather than an engineered feature.
        field_name = feature if feature in self.raw_columns else None
        if field_name is None:
            sources = self.extra.get("feature_sources", {}).get(feature) or []
            field_name = sources[0] if sources else feature
        where = f"row {row + 1}" if row is not None else f"{label!r}"
        return InvalidInput(field_name, f"{where}: a missing or invalid value leaves feature {feature!r} empty")


def _column_values(table, name: str) -> list:
    values = table[name]
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _index_values(table) -> list:
    """Row labels: a DataFrame's index, else positions (a request's rows)."""
    if isinstance(table, pd.DataFrame):
        return table.index.tolist()
    return list(range(len(table)))


def _concat_frames(frames: list[Frame]) -> Frame:
    """History windows of several requests as one frame: the groups one after the other."""
    if len(frames) == 1:
        return frames[0]
    first = frames[0]
    sizes = np.concatenate([f.sizes for f in frames])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return Frame(
        n=int(sizes.sum()),
        columns={name: np.concatenate([f.columns[name] for f in frames]) for name in first.columns},
        kinds=dict(first.kinds),
        starts=starts,
        sizes=sizes,
        order=None,
        time=None if first.time is None else np.concatenate([f.time for f in frames]),
        entities=[e for f in frames for e in f.entities],
    )
