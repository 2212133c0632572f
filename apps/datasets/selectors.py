"""Reads for datasets, versions and feature specs."""

import hashlib
import io
import threading
from collections import OrderedDict

import numpy as np
import pandas as pd
from django.core.files.storage import storages
from django.db.models import QuerySet

from .ingest import Limits, read_stored
from .models import Dataset, DatasetVersion, FeatureSpec
from .preprocessing import DataError, DatasetInfo, prepare_training_data

_CACHE_SIZE = 4
_cache: "OrderedDict[tuple, pd.DataFrame]" = OrderedDict()
_cache_lock = threading.Lock()


class DatasetFileError(RuntimeError):
    """A version's stored file is missing or no longer matches its sha256."""


def dataset_list() -> QuerySet[Dataset]:
    return Dataset.objects.all().order_by("name")


def dataset_version_list(*, dataset: Dataset) -> QuerySet[DatasetVersion]:
    return dataset.versions.select_related("created_by").order_by("-version")


def dataset_version_latest(*, dataset: Dataset) -> DatasetVersion | None:
    return dataset.versions.order_by("-version").first()


def dataset_version_get(*, dataset: Dataset, version: int) -> DatasetVersion | None:
    return dataset.versions.filter(version=version).first()


def feature_spec_list(*, dataset: Dataset | None = None) -> QuerySet[FeatureSpec]:
    specs = FeatureSpec.objects.select_related("dataset").order_by("dataset__name", "name", "-version")
    return specs.filter(dataset=dataset) if dataset is not None else specs


def feature_spec_latest(*, dataset: Dataset, name: str) -> FeatureSpec | None:
    return FeatureSpec.objects.filter(dataset=dataset, name=name).order_by("-version").first()


def _read_bytes(version: DatasetVersion) -> bytes:
    storage = storages["artifacts"]
    try:
        with storage.open(version.file, "rb") as handle:
            content = handle.read()
    except FileNotFoundError:
        raise DatasetFileError(f"{version}: stored file {version.file} is missing") from None
    if hashlib.sha256(content).hexdigest() != version.sha256:
        raise DatasetFileError(f"{version}: stored file {version.file} does not match its sha256")
    return content


def _parse(version: DatasetVersion, content: bytes) -> pd.DataFrame:
    return read_stored(io.BytesIO(content), file_format=version.file_format, schema=version.schema)


def _verify_streaming(version: DatasetVersion) -> None:
    """The sha256 check without holding the file in memory."""
    digest = hashlib.sha256()
    try:
        with storages["artifacts"].open(version.file, "rb") as handle:
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
    except FileNotFoundError:
        raise DatasetFileError(f"{version}: stored file {version.file} is missing") from None
    if digest.hexdigest() != version.sha256:
        raise DatasetFileError(f"{version}: stored file {version.file} does not match its sha256")


def dataset_version_dataframe(*, version: DatasetVersion) -> pd.DataFrame:
    """The version's table, typed as recorded at upload (sha256 checked on read; a few are cached)."""
    key = (version.pk, version.sha256)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key].copy()
    frame = _parse(version, _read_bytes(version))
    with _cache_lock:
        _cache[key] = frame
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return frame.copy()


def dataset_version_preview(*, version: DatasetVersion, rows: int = 20) -> dict:
    """The first rows, read alone from the stored file (or the cached table): a preview of a large
    version costs what it shows, not the whole table."""
    rows = max(1, min(rows, 500))
    with _cache_lock:
        cached = _cache.get((version.pk, version.sha256))
    if cached is not None:
        frame = cached.head(rows)
    else:
        _verify_streaming(version)
        with storages["artifacts"].open(version.file, "rb") as handle:
            frame = read_stored(handle, file_format=version.file_format, schema=version.schema, rows=rows)
    return {"columns": [str(c) for c in frame.columns], "rows": _json_rows(frame)}


def _json_rows(frame: pd.DataFrame) -> list[list]:
    out = []
    for row in frame.itertuples(index=False, name=None):
        out.append([_json_value(v) for v in row])
    return out


def _json_value(value):
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def feature_preview(*, version: DatasetVersion, spec: dict, rows: int = 20, seed: int = 0) -> dict:
    """The engineered columns a spec makes from a version: the first `rows` rows that have their full
    history, with the time, entity and label beside them, plus the split sizes. The stateful steps are
    fitted on the training split exactly as a training run would."""
    dataset = version.dataset
    # A version stored before the limits (or with them raised) would be read whole: refuse instead.
    too_large = Limits.from_settings().table_problem(rows=version.rows, columns=len(version.schema))
    if too_large:
        raise DataError(f"{version} has {too_large}; its features are not previewed here")
    frame = dataset_version_dataframe(version=version)
    prepared = prepare_training_data(df=frame, dataset=dataset, spec=spec, seed=seed)
    pre = prepared.preprocessor
    features = pre.transform(frame)
    info = DatasetInfo.of(dataset)
    keys = [c for c in (info.time_column, info.entity_column) if c]
    shown = features.dropna().head(max(1, min(rows, 200)))
    table = frame.loc[shown.index, keys].reset_index(drop=True)
    table = pd.concat([table, shown.reset_index(drop=True)], axis=1)
    return {
        "columns": [str(c) for c in table.columns],
        "rows": _json_rows(table),
        "feature_names": list(pre.feature_names),
        "raw_columns": list(pre.raw_columns),
        "history_rows": pre.history_rows,
        "target": pre.target_name,
        "classes": prepared.classes,
        "summary": prepared.summary(),
    }
