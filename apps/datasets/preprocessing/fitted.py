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
        return DatasetInfo(task=self.task, target_column=self.target_column, time_column=self.time_column,
                           entity_column=self.entity_column)

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
        fields = {k: data[k] for k in (
            "spec", "fitted", "feature_names", "raw_columns", "raw_kinds", "history_rows", "task", "target_column",
            "target_name", "entity_column", "time_column", "classes")}
        return cls(**fields, extra=data.get("extra") or {})

    def _frame(self, df: pd.DataFrame) -> Frame:
        if not isinstance(df, pd.DataFrame):
            raise InvalidInput("rows", "expected a table of rows")
        for column in self.raw_columns:
            if column not in df.columns:
                raise InvalidInput(column, "missing column")
        value_columns = [c for c in self.raw_columns if c not in (self.time_column, self.entity_column)]
        return build_frame(df, columns=value_columns, time_column=self.time_column,
                           entity_column=self.entity_column, kinds=self.raw_kinds)

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
        if len(df) == 0:
            raise InvalidInput("rows", "no rows were sent")
        frame = self._frame(df)
        if self.needs_history:
            frame, last_rows = self._latest_windows(frame)
            columns = self._features(frame)
            rows = last_rows
            if self.entity_column:
                labels = list(frame.entities)
            else:
                labels = [self._time_label(frame, rows[0]) if self.time_column else str(df.index[-1])]
            source_rows = None
        else:
            columns = self._features(frame)
            inverse = np.empty(frame.n, dtype=np.int64)
            if frame.order is None:
                inverse = np.arange(frame.n)
            else:
                inverse[frame.order] = np.arange(frame.n)
            rows = inverse
            if self.entity_column:
                labels = [str(v) for v in df[self.entity_column].tolist()]
            elif self.time_column:
                labels = [str(v) for v in df[self.time_column].tolist()]
            else:
                labels = [str(v) for v in df.index.tolist()]
            source_rows = np.arange(frame.n)
        matrix = np.column_stack([c[rows] for c in columns]).astype(np.float32, copy=False)
        bad = ~np.isfinite(matrix)
        if bad.any():
            row, col = (int(v) for v in np.argwhere(bad)[0])
            raise self._missing_value(self.feature_names[col], row if source_rows is not None else None, labels[row])
        return pd.DataFrame(matrix, columns=list(self.feature_names)), labels

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
