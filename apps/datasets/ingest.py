"""Reading and checking an uploaded CSV or Parquet file (either may come gzip-compressed or alone in a zip).

Every problem is reported as a ValidationError on the `file` field with a message that names the
problem and where it is (row and column, byte offset, sizes), before anything is stored.

The size of a dataset version is bounded by settings (DATASET_MAX_ROWS, DATASET_MAX_COLUMNS,
DATASET_MAX_CELLS, DATASET_MAX_DECOMPRESSED_BYTES) checked while the file is read, never after:
a file can be tiny and still expand to a huge table (20,000,000 constant rows are a 263 KB Parquet
file; a gzip bomb; one long string repeated through a dictionary page). Parquet is measured from its
metadata before any data is read, then row group by row group (dictionary columns are sized before
they are expanded); CSV is read in chunks with a running count; compressed uploads are counted as
they are decompressed.
"""

import codecs
import csv
import gzip
import hashlib
import io
import os
import re
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.exceptions import ValidationError

from .choices import FileFormat

CHUNK_BYTES = 1024 * 1024
# CSV is parsed this many cells at a time, so a chunk costs a few MB before the running count sees it.
CSV_CHUNK_CELLS = 1_000_000
# The header line is read from this many bytes at most (1,000 columns of 1,000 characters fit).
HEADER_MAX_BYTES = 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# Recognised only to say so: these would otherwise be reported as a NUL byte in a text file.
# Whole signatures (bzip2: "BZh", block size, block magic), so a CSV header such as "BZhx,..." is not one.
OTHER_COMPRESSION = {
    "bzip2": re.compile(rb"BZh[1-9]1AY&SY"),
    "xz": re.compile(rb"\xfd7zXZ\x00"),
    "zstd": re.compile(rb"\x28\xb5\x2f\xfd"),
}
GZIP_SUFFIXES = (".gz", ".gzip")
# A zip holds one table; folders and macOS metadata beside it are skipped, more is refused unread.
MAX_ZIP_ENTRIES = 16
# Cells that mean "no value" in a CSV (others, such as "n/a" in a numeric column, are errors).
NA_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
# A text column whose non-empty values are nearly all numbers is a numeric column with bad values.
NUMERIC_SHARE = 0.9
TRUE_FALSE = {"true", "false"}


def file_error(message: str, code: str | None = None) -> ValidationError:
    return ValidationError({"file": [ValidationError(message, code=code)]})


@dataclass(frozen=True)
class Limits:
    """The most one dataset version may hold. Each check raises a `file` error naming the setting,
    the limit and the value found (`at least` when reading stopped as soon as the limit was passed)."""

    rows: int
    columns: int
    cells: int
    decompressed_bytes: int

    @classmethod
    def from_settings(cls) -> "Limits":
        # Read per call, so a changed setting (or a test's override) applies to the next upload.
        return cls(
            rows=settings.DATASET_MAX_ROWS,
            columns=settings.DATASET_MAX_COLUMNS,
            cells=settings.DATASET_MAX_CELLS,
            decompressed_bytes=settings.DATASET_MAX_DECOMPRESSED_BYTES,
        )

    def describe(self) -> str:
        return (
            f"at most {self.rows:,} rows, {self.columns:,} columns, {self.cells:,} cells and "
            f"{self.decompressed_bytes:,} bytes decompressed"
        )

    def table_problem(self, *, rows: int, columns: int, at_least: bool = False, where: str = "") -> str | None:
        found = "at least " if at_least else ""
        if columns > self.columns:
            return f"{columns:,} columns, over the limit of {self.columns:,} columns (DATASET_MAX_COLUMNS)"
        if rows > self.rows:
            return f"{found}{rows:,} rows{where}, over the limit of {self.rows:,} rows (DATASET_MAX_ROWS)"
        if rows * columns > self.cells:
            return (
                f"{found}{rows * columns:,} cells ({rows:,} rows x {columns:,} columns){where}, over the limit "
                f"of {self.cells:,} cells (DATASET_MAX_CELLS)"
            )
        return None

    def check_table(self, *, rows: int, columns: int, at_least: bool = False, where: str = "") -> None:
        problem = self.table_problem(rows=rows, columns=columns, at_least=at_least, where=where)
        if problem:
            raise file_error(f"the file has {problem}", code="limit")

    def check_bytes(self, size: int, *, what: str, at_least: bool = False, where: str = "") -> None:
        if size > self.decompressed_bytes:
            raise file_error(
                f"{what} {'at least ' if at_least else ''}{size:,} bytes{where}, over the limit of "
                f"{self.decompressed_bytes:,} bytes (DATASET_MAX_DECOMPRESSED_BYTES)",
                code="limit",
            )


def _strip_suffix(name: str, suffixes) -> str:
    for suffix in suffixes:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def detect_format(filename: str) -> str | None:
    """The format a file name promises; None for a .zip, whose only member decides. A gzip suffix is
    looked through (`prices.csv.gz` is CSV)."""
    name = (filename or "").lower()
    if name.endswith(".zip"):
        return None
    name = _strip_suffix(name, GZIP_SUFFIXES)
    if name.endswith(".csv") or name.endswith(".txt"):
        return FileFormat.CSV
    if name.endswith(".parquet") or name.endswith(".pq"):
        return FileFormat.PARQUET
    raise file_error(
        f"{filename or 'the file'!s}: unsupported file type; upload a .csv or .parquet file "
        "(gzip-compressed as .csv.gz / .parquet.gz, or the only file in a .zip)"
    )


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


def unpack(
    spooled: SpooledUpload, *, filename: str, file_format: str | None, limits: Limits
) -> tuple[SpooledUpload, str]:
    """The table a gzip or zip upload holds, decompressed to a temporary file of its own in chunks,
    counted and hashed as it streams and stopped as soon as it passes DATASET_MAX_DECOMPRESSED_BYTES;
    an uncompressed upload as it is. Returns it with its format. The version stores (and hashes) the
    decompressed table, so identical content is one version however it was packed."""
    with open(spooled.path, "rb") as handle:
        head = handle.read(16)
    if head.startswith(GZIP_MAGIC):
        inner = detect_format(_strip_suffix(filename or "", GZIP_SUFFIXES))
        if inner is None:
            raise file_error("the file is gzip-compressed but named .zip; name it .csv.gz or .parquet.gz")
        stream = gzip.open(spooled.path, "rb")
        return _decompressed(stream, what="gzip", upload_size=spooled.size, limits=limits), inner
    if head.startswith(ZIP_MAGIC):
        return _unzip(spooled, limits=limits)
    if file_format is None:
        raise file_error("not a readable zip file: it does not start with a zip header")
    for name, signature in OTHER_COMPRESSION.items():
        if signature.match(head):
            raise file_error(f"the file is {name}-compressed; upload it uncompressed, gzip-compressed or in a .zip")
    return spooled, file_format


def _zip_entries(path: str) -> int | None:
    """The entry count in the zip's end record (None when there is none): read before zipfile parses
    the whole central directory, which for millions of empty entries costs gigabytes."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - (22 + 65535)))  # the end record, then a comment of up to 64 KiB
        tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    return struct.unpack("<H", tail[at + 10 : at + 12])[0]  # 0xFFFF: more, counted in a zip64 record


def _unzip(spooled: SpooledUpload, *, limits: Limits) -> tuple[SpooledUpload, str]:
    entries = _zip_entries(spooled.path)
    if entries is not None and entries > MAX_ZIP_ENTRIES:
        raise file_error(
            f"the zip file holds {entries:,}{'+' if entries == 0xFFFF else ''} entries; put exactly one "
            ".csv or .parquet file in it"
        )
    try:
        archive = zipfile.ZipFile(spooled.path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise file_error(f"not a readable zip file: {exc}") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
        if len(members) != 1:
            names = ", ".join(repr(m.filename) for m in members[:5]) or "nothing"
            raise file_error(
                f"the zip file holds {len(members)} files ({names}); put exactly one .csv or .parquet file in it"
            )
        member = members[0]
        inner = detect_format(member.filename)
        if inner is None:
            raise file_error(f"the zip file holds another zip file ({member.filename!r}); upload the table itself")
        # The declared size refuses an honest bomb at once; the streamed count catches a lying header.
        limits.check_bytes(member.file_size, what=f"{member.filename!r} in the zip file declares")
        try:
            stream = archive.open(member)
        except (RuntimeError, NotImplementedError, zipfile.BadZipFile, OSError) as exc:
            raise file_error(f"cannot read {member.filename!r} in the zip file: {exc}") from None
        return _decompressed(stream, what="zip", upload_size=spooled.size, limits=limits), inner


def _decompressed(stream, *, what: str, upload_size: int, limits: Limits) -> SpooledUpload:
    digest = hashlib.sha256()
    size = 0
    handle, path = tempfile.mkstemp(prefix="dataset-unpacked-")
    try:
        with stream, os.fdopen(handle, "wb") as out:
            while True:
                try:
                    # read(n) bounds the output of one call, however much one input block expands.
                    chunk = stream.read(CHUNK_BYTES)
                except (OSError, EOFError, zlib.error, zipfile.BadZipFile, NotImplementedError) as exc:
                    raise file_error(f"cannot decompress the {what} file: {exc}") from None
                if not chunk:
                    break
                size += len(chunk)
                limits.check_bytes(size, at_least=True, what=f"the {upload_size:,}-byte {what} file decompresses to")
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
        sample = handle.read(HEADER_MAX_BYTES)
    if not sample.strip():
        raise file_error("the file is empty")
    text = io.StringIO(sample)
    first = next(csv.reader(text), [])
    if len(sample) == HEADER_MAX_BYTES and text.tell() == len(sample) and not sample.endswith(("\n", "\r")):
        raise file_error(
            f"the header line is longer than {HEADER_MAX_BYTES:,} bytes "
            f"(at least {len(first):,} columns); check the file is CSV with one header line"
        )
    return [name.strip() for name in first]


def _check_header(names: list[str]) -> None:
    for index, name in enumerate(names, start=1):
        if name == "":
            raise file_error(f"column {index} of the header has no name")
    if names and all(_looks_numeric(name) for name in names):
        raise file_error(f"the first line has no column names (it holds values such as {names[0]!r}); add a header row")
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


def read_table(
    path: str,
    file_format: str,
    *,
    numeric_columns: set[str] = frozenset(),
    time_column: str = "",
    limits: Limits | None = None,
) -> ParsedTable:
    """Parses and checks the spooled (decompressed) file; returns the typed table and its schema.
    The size limits are checked while reading, before the whole table is in memory."""
    limits = limits or Limits.from_settings()
    size = os.path.getsize(path)
    if size == 0:
        raise file_error("the file is empty")
    if file_format == FileFormat.CSV:
        limits.check_bytes(size, what="the CSV text is")
        _check_utf8(path)
        names = _csv_header(path)
        limits.check_table(rows=0, columns=len(names))
        _check_header(names)
        frame = _read_csv(path, names, limits)
        frame = _type_columns(frame, numeric_columns=numeric_columns, text_row_offset=1)
    else:
        frame = _read_parquet(path, limits)
        frame = _type_columns(frame, numeric_columns=numeric_columns, text_row_offset=0)
    if len(frame) == 0:
        raise file_error("the file has a header but no data rows")
    for name in frame.columns:
        if frame[name].isna().all():
            raise file_error(f"column {name!r} is empty in every row")
    if time_column and time_column in frame.columns:
        _check_times(frame[time_column], time_column)
    return ParsedTable(frame=frame, schema=schema_of(frame))


def _read_csv(path: str, names: list[str], limits: Limits) -> pd.DataFrame:
    chunks, rows = [], 0
    try:
        reader = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_values=NA_VALUES,
            skipinitialspace=True,
            encoding="utf-8-sig",
            chunksize=max(1, CSV_CHUNK_CELLS // max(1, len(names))),
        )
        with reader:
            for chunk in reader:
                if not chunks:
                    chunk.columns = [str(c).strip() for c in chunk.columns]
                    if list(chunk.columns) != names:
                        raise file_error("the header could not be read consistently; check quoting on the first line")
                rows += len(chunk)
                limits.check_table(rows=rows, columns=len(names), at_least=True, where=" (reading stopped there)")
                chunks.append(chunk)
    except pd.errors.EmptyDataError:
        raise file_error("the file is empty") from None
    except pd.errors.ParserError as exc:
        raise file_error(f"the file is not valid CSV: {exc}") from None
    if rows == 0:
        raise file_error("the file has a header but no data rows")
    frame = chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)
    frame.columns = names
    return frame


def _is_text(data_type) -> bool:
    import pyarrow as pa

    views = [getattr(pa.types, name, None) for name in ("is_string_view", "is_binary_view")]
    return (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_binary(data_type)
        or pa.types.is_large_binary(data_type)
        or any(view and view(data_type) for view in views)
    )


def _read_parquet(path: str, limits: Limits) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        meta, schema = parquet.metadata, parquet.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise file_error(f"not a readable Parquet file: {exc}") from None
    # The footer alone says how large the table is: refuse before reading any data.
    limits.check_table(rows=meta.num_rows, columns=meta.num_columns, where=" (in its metadata)")
    stored = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    limits.check_bytes(stored, what="the file's columns decompress to", where=" (in its metadata)")
    _check_header([str(n).strip() for n in schema.names])
    for field in schema:
        if pa.types.is_nested(field.type):
            raise file_error(
                f"column {field.name!r} holds {field.type} values; upload a flat table (one value per cell)"
            )
    try:
        # Text columns stay dictionary-encoded while read, so their expanded size is known before
        # they are expanded (one long string repeated through the dictionary costs nothing until then).
        parquet = pq.ParquetFile(path, read_dictionary=[f.name for f in schema if _is_text(f.type)])
        groups, rows, decoded = [], 0, 0
        for index in range(meta.num_row_groups):
            group = parquet.read_row_group(index)
            rows += group.num_rows
            where = f" (reading stopped at row group {index + 1} of {meta.num_row_groups})"
            limits.check_table(rows=rows, columns=meta.num_columns, at_least=True, where=where)
            decoded += _expanded_bytes(group)
            limits.check_bytes(decoded, at_least=True, what="the file's values expand to", where=where)
            groups.append(_expand_dictionaries(group))
        table = pa.concat_tables(groups) if groups else schema.empty_table()
    except (pa.ArrowException, OSError) as exc:
        raise file_error(f"not a readable Parquet file: {exc}") from None
    try:
        frame = parquet_frame(table)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        # ValueError also when a named index has the name of a column.
        raise file_error(f"the Parquet file holds types this portal cannot read: {exc}") from None
    del table, groups
    _check_header(list(frame.columns))
    _check_no_nul(frame)
    return frame


def _expanded_bytes(table) -> int:
    """Bytes of the table's values once every dictionary column is expanded."""
    import pyarrow.compute as pc

    total = 0
    for column in table.columns:
        for chunk in column.chunks:
            if not hasattr(chunk, "dictionary"):
                total += chunk.nbytes
            elif _is_text(chunk.dictionary.type):
                lengths = pc.take(pc.binary_length(chunk.dictionary), chunk.indices)
                total += (pc.sum(lengths).as_py() or 0) + 8 * len(chunk)  # values + offsets
            else:
                try:
                    total += len(chunk) * max(1, chunk.dictionary.type.bit_width // 8)
                except ValueError:
                    total += chunk.nbytes
    return total


def _expand_dictionaries(table):
    import pyarrow as pa

    fields = [
        pa.field(f.name, f.type.value_type, f.nullable) if pa.types.is_dictionary(f.type) else f for f in table.schema
    ]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def _check_no_nul(frame: pd.DataFrame) -> None:
    """PostgreSQL stores no NUL in text or jsonb (the schema and profile hold names and values)."""
    for name in frame.columns:
        if "\x00" in name:
            raise file_error(f"column name {name!r} holds a NUL character (\\x00); rename the column")
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_string_dtype(column.dtype) and column.dtype != object:
            hits = column.str.contains("\x00", regex=False).fillna(False).astype(bool)
        elif column.dtype == object:
            hits = column.map(lambda v: isinstance(v, str) and "\x00" in v)
        else:
            continue
        if hits.any():
            position = int(hits.to_numpy().argmax())
            raise file_error(f"row {position + 1}, column {name!r}: the value holds a NUL character (\\x00); remove it")


def _type_columns(frame: pd.DataFrame, *, numeric_columns, text_row_offset: int) -> pd.DataFrame:
    """Turns text columns of numbers into numbers; a stray word in one is an error naming row and column."""
    out = {}
    for name in frame.columns:
        series = frame[name]
        if (
            pd.api.types.is_numeric_dtype(series.dtype)
            or pd.api.types.is_bool_dtype(series.dtype)
            or pd.api.types.is_datetime64_any_dtype(series.dtype)
        ):
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
    return [
        {"name": str(name), "dtype": dtype_name(frame[name]), "nulls": int(frame[name].isna().sum())}
        for name in frame.columns
    ]


def kinds_from_schema(schema: list[dict]) -> dict[str, str]:
    """Column kinds as the preprocessing package names them, from a version's stored schema."""
    kinds = {}
    for column in schema:
        dtype = column["dtype"]
        kinds[column["name"]] = (
            "numeric" if dtype in ("int64", "float64", "bool") else "datetime" if dtype == "datetime" else "text"
        )
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


def parquet_frame(table) -> pd.DataFrame:
    """An Arrow table as the portal reads it. pandas writes a named index (a date, say) as a column
    and reads it back as the index: it stays a column, as it is in the file; an unnamed index is only
    row numbers. Names are stripped."""
    frame = table.to_pandas()
    named = [name for name in frame.index.names if name is not None]
    if named:
        frame = frame.reset_index(level=named)
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_stored(source, *, file_format: str, schema: list[dict], rows: int | None = None) -> pd.DataFrame:
    """A stored version's table typed as recorded at upload; with `rows`, only its first rows are read
    (the first batch of the first row group, or `nrows` lines of CSV), so a preview costs what it shows.
    `source` is a path or a binary file object."""
    if file_format == FileFormat.PARQUET:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if rows is None:
            table = pq.read_table(source)
        else:
            parquet = pq.ParquetFile(source)
            batch = next(parquet.iter_batches(batch_size=rows), None)
            table = pa.Table.from_batches([batch]) if batch is not None else parquet.schema_arrow.empty_table()
        frame = parquet_frame(table)
    else:
        dtypes = {c["name"]: {"float64": "float64", "int64": "Int64"}.get(c["dtype"], "str") for c in schema}
        frame = pd.read_csv(
            source,
            encoding="utf-8-sig",
            keep_default_na=False,
            na_values=NA_VALUES,
            skipinitialspace=True,
            dtype=dtypes,
            nrows=rows,
        )
        frame.columns = [str(c).strip() for c in frame.columns]
    return apply_schema(frame, schema)
