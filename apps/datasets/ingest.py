"""Reading and checking an uploaded CSV or Parquet file.

Every problem is reported as a ValidationError on the `file` field with a message that names the
problem and where it is (row and column, byte offset, sizes), before anything is stored.
"""
import codecs
import csv
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.exceptions import ValidationError

from .choices import FileFormat

CHUNK_BYTES = 1024 * 1024
# Cells that mean "no value" in a CSV (others, such as "n/a" in a numeric column, are errors).
NA_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
# A text column whose non-empty values are nearly all numbers is a numeric column with bad values.
NUMERIC_SHARE = 0.9
TRUE_FALSE = {"true", "false"}


def file_error(message: str) -> ValidationError:
    return ValidationError({"file": [message]})


def detect_format(filename: str) -> str:
    name = (filename or "").lower()
    if name.endswith(".csv") or name.endswith(".txt"):
        return FileFormat.CSV
    if name.endswith(".parquet") or name.endswith(".pq"):
        return FileFormat.PARQUET
    raise file_error(f"{filename or 'the file'!s}: unsupported file type; upload a .csv or .parquet file")


@dataclass
class SpooledUpload:
    """The upload copied to a local temporary file, with its size and sha256."""

    path: str
    size: int
    sha256: str

    def close(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def spool(file, *, max_bytes: int | None = None) -> SpooledUpload:
    """Streams `file` (Django UploadedFile, File or binary file object) to a temporary file in chunks,
    hashing as it goes and stopping as soon as the size limit is passed."""
    limit = settings.DATASET_UPLOAD_MAX_BYTES if max_bytes is None else max_bytes
    declared = getattr(file, "size", None)
    if declared is not None and declared > limit:
        raise file_error(f"the file is {declared:,} bytes, over the limit of {limit:,} bytes")
    digest = hashlib.sha256()
    size = 0
    handle, path = tempfile.mkstemp(prefix="dataset-upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            chunks = file.chunks(CHUNK_BYTES) if hasattr(file, "chunks") else iter(lambda: file.read(CHUNK_BYTES), b"")
            if hasattr(file, "seek"):
                try:
                    file.seek(0)
                except (OSError, ValueError):
                    pass
            for chunk in chunks:
                if isinstance(chunk, str):
                    raise file_error("expected a binary file upload")
                size += len(chunk)
                if size > limit:
                    raise file_error(f"the file is over the limit of {limit:,} bytes")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return SpooledUpload(path=path, size=size, sha256=digest.hexdigest())


@dataclass
class ParsedTable:
    frame: pd.DataFrame
    schema: list[dict]


def _line_at(path: str, offset: int) -> int:
    with open(path, "rb") as again:
        return again.read(max(offset, 0)).count(b"\n") + 1


def _check_utf8(path: str) -> None:
    """UTF-8 text without NUL bytes (valid UTF-8, but PostgreSQL stores no NUL in text or jsonb)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    line = 1
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            nul = chunk.find(b"\x00")
            if nul >= 0:
                raise file_error(
                    f"the file holds a NUL byte (0x00) at offset {offset + nul} (line {_line_at(path, offset + nul)}); "
                    "a text file has none: remove it, or check the file is really CSV"
                )
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                # Position inside the buffer the decoder held: pending bytes from the last chunk + this one.
                pending = len(exc.object) - len(chunk)
                bad = offset - pending + exc.start
                line = _line_at(path, bad)
                raise file_error(
                    f"cannot read the file as UTF-8 text: byte 0x{exc.object[exc.start]:02x} at offset {bad} "
                    f"(line {line}); save it as UTF-8"
                ) from None
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise file_error("cannot read the file as UTF-8 text: it ends in the middle of a character") from None


def _csv_header(path: str) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        sample = handle.read(64 * 1024)
    if not sample.strip():
        raise file_error("the file is empty")
    first = next(csv.reader(io.StringIO(sample)), [])
    return [name.strip() for name in first]


def _check_header(names: list[str]) -> None:
    for index, name in enumerate(names, start=1):
        if name == "":
            raise file_error(f"column {index} of the header has no name")
    if names and all(_looks_numeric(name) for name in names):
        raise file_error(
            f"the first line has no column names (it holds values such as {names[0]!r}); add a header row"
        )
    seen = {}
    for index, name in enumerate(names, start=1):
        if name in seen:
            raise file_error(f"duplicate column name {name!r} (columns {seen[name]} and {index})")
        seen[name] = index


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_table(path: str, file_format: str, *, numeric_columns: set[str] = frozenset(),
               time_column: str = "") -> ParsedTable:
    """Parses and checks the spooled file; returns the typed table and its schema."""
    if os.path.getsize(path) == 0:
        raise file_error("the file is empty")
    if file_format == FileFormat.CSV:
        _check_utf8(path)
        names = _csv_header(path)
        _check_header(names)
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=NA_VALUES, skipinitialspace=True,
                                encoding="utf-8-sig")
        except pd.errors.EmptyDataError:
            raise file_error("the file is empty") from None
        except pd.errors.ParserError as exc:
            raise file_error(f"the file is not valid CSV: {exc}") from None
        frame.columns = [str(c).strip() for c in frame.columns]
        if list(frame.columns) != names:
            raise file_error("the header could not be read consistently; check quoting on the first line")
        frame = _type_columns(frame, numeric_columns=numeric_columns, text_row_offset=1)
    else:
        frame = _read_parquet(path)
        frame = _type_columns(frame, numeric_columns=numeric_columns, text_row_offset=0)
    if len(frame) == 0:
        raise file_error("the file has a header but no data rows")
    for name in frame.columns:
        if frame[name].isna().all():
            raise file_error(f"column {name!r} is empty in every row")
    if time_column and time_column in frame.columns:
        _check_times(frame[time_column], time_column)
    return ParsedTable(frame=frame, schema=schema_of(frame))


def _read_parquet(path: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise file_error(f"not a readable Parquet file: {exc}") from None
    names = [str(n).strip() for n in table.schema.names]
    _check_header(names)
    try:
        frame = table.to_pandas()
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise file_error(f"the Parquet file holds types this portal cannot read: {exc}") from None
    frame.columns = names
    _check_no_nul(frame)
    return frame


def _check_no_nul(frame: pd.DataFrame) -> None:
    """PostgreSQL stores no NUL in text or jsonb (the schema and profile hold names and values)."""
    for name in frame.columns:
        if "\x00" in name:
            raise file_error(f"column name {name!r} holds a NUL character (\\x00); rename the column")
    for name in frame.columns:
        column = frame[name]
        if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
            hits = column.map(lambda v: isinstance(v, str) and "\x00" in v)
            if hits.any():
                position = int(hits.to_numpy().argmax())
                raise file_error(f"row {position + 1}, column {name!r}: the value holds a NUL character (\\x00); remove it")


def _type_columns(frame: pd.DataFrame, *, numeric_columns, text_row_offset: int) -> pd.DataFrame:
    """Turns text columns of numbers into numbers; a stray word in one is an error naming row and column."""
    out = {}
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype) \
                or pd.api.types.is_datetime64_any_dtype(series.dtype):
            out[name] = series
            continue
        text = series.astype("string").str.strip()
        present = text.notna() & text.ne("")
        total = int(present.sum())
        if total and text[present].str.lower().isin(TRUE_FALSE).all():
            out[name] = text.str.lower().map({"true": True, "false": False}).astype("boolean")
            continue
        numbers = pd.to_numeric(text.where(present), errors="coerce")
        parsed = int(numbers.notna().sum())
        numeric = name in numeric_columns or (total and parsed >= NUMERIC_SHARE * total and parsed > 0)
        if numeric and parsed < total:
            bad = present & numbers.isna()
            position = int(np.flatnonzero(bad.to_numpy())[0])
            value = series.iloc[position]
            raise file_error(
                f"row {position + 1}, column {name!r}: {value!r} is not a number "
                f"(the column is numeric{'' if text_row_offset == 0 else f'; line {position + 2} of the file'})"
            )
        if numeric:
            if (numbers.dropna() % 1 == 0).all() and numbers.abs().max() < 2**53:
                out[name] = numbers.astype("Int64") if numbers.isna().any() else numbers.astype("int64")
            else:
                out[name] = numbers.astype("float64")
        else:
            out[name] = text.where(present).astype("str") if not present.all() else text.astype("str")
    return pd.DataFrame(out, index=frame.index)


def _check_times(series: pd.Series, name: str) -> None:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return
    from .preprocessing.errors import InvalidInput
    from .preprocessing.frame import to_datetime_ns

    try:
        to_datetime_ns(series.astype(object), name=name)
    except InvalidInput as exc:
        raise file_error(f"column {name!r}, {exc.message}") from None


def dtype_name(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int64"
    if pd.api.types.is_float_dtype(dtype):
        return "float64"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "string"


def schema_of(frame: pd.DataFrame) -> list[dict]:
    return [{"name": str(name), "dtype": dtype_name(frame[name]), "nulls": int(frame[name].isna().sum())}
            for name in frame.columns]


def kinds_from_schema(schema: list[dict]) -> dict[str, str]:
    """Column kinds as the preprocessing package names them, from a version's stored schema."""
    kinds = {}
    for column in schema:
        dtype = column["dtype"]
        kinds[column["name"]] = ("numeric" if dtype in ("int64", "float64", "bool")
                                 else "datetime" if dtype == "datetime" else "text")
    return kinds


def apply_schema(frame: pd.DataFrame, schema: list[dict]) -> pd.DataFrame:
    """Reads a stored file back with the types recorded when it was accepted."""
    out = {}
    for column in schema:
        name, dtype = column["name"], column["dtype"]
        series = frame[name]
        if dtype == "int64":
            series = pd.to_numeric(series).astype("Int64" if column["nulls"] else "int64")
        elif dtype == "float64":
            series = pd.to_numeric(series).astype("float64")
        elif dtype == "bool":
            if not pd.api.types.is_bool_dtype(series.dtype):
                series = series.astype("string").str.strip().str.lower().map({"true": True, "false": False})
            series = series.astype("boolean")
        elif dtype == "string" and not pd.api.types.is_string_dtype(series.dtype):
            series = series.astype("str")
        out[name] = series
    return pd.DataFrame(out)
