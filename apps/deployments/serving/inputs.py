"""Prediction request bodies → a checked table of raw rows.

Accepted shapes: MLflow's scoring formats (`dataframe_split`, `dataframe_records`, `instances`,
`inputs`, or a `text/csv` body with a header row) and the Open Inference Protocol V2 request
(`inputs: [{name, shape, datatype, data}]`; a body with binary tensor data is first turned into that
JSON by serving/v2.py). Each is first turned into columns (name → list of values), then checked against what the chosen
model version needs: every raw column present, no column no served version knows, the JSON type
each column's kind asks for, finite numbers, no nulls, a row count between 1 and the batch limit.
Every rejection is an InputError naming the field, which the views turn into a 400.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from apps.core.jsonlimits import max_json_depth

NUMERIC = "numeric"
TEXT = "text"
DATETIME = "datetime"
MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
CSV_FORMAT = "text/csv"
# MLflow's scoring server also reads Parquet; this one does not (answered 415, naming what it reads).
UNSUPPORTED_MLFLOW_TYPES = ("application/vnd.apache.parquet",)

V2_NUMERIC_TYPES = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
}
V2_TYPES = V2_NUMERIC_TYPES | {"BYTES"}


class InputError(ValueError):
    """A request the model cannot take; `field` names the column or the part of the body at fault."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class UnsupportedMediaType(InputError):
    """A body in a Content-Type the endpoint does not read (the API answers 415)."""

    status = 415


@dataclass(frozen=True)
class InputSpec:
    """The raw input of one model version, read from its signature."""

    columns: tuple[str, ...]
    kinds: dict
    history_rows: int = 1
    entity_column: str = ""
    time_column: str = ""

    @classmethod
    def from_signature(cls, signature: dict, *, kinds: dict | None = None) -> InputSpec:
        """`kinds` (the fitted preprocessor's raw_kinds) wins; else the dtypes the signature lists."""
        columns = tuple(signature.get("raw_columns") or signature.get("feature_names") or ())
        kinds = dict(kinds or signature.get("raw_kinds") or {})
        for item in signature.get("inputs") or []:
            if isinstance(item, dict) and item.get("name") in columns and item["name"] not in kinds:
                dtype = str(item.get("dtype", ""))
                if dtype in ("int64", "float64", "bool", "float32", "int32"):
                    kinds[item["name"]] = NUMERIC
                elif dtype.startswith("datetime"):
                    kinds[item["name"]] = DATETIME
                elif dtype in ("string", "object", "text"):
                    kinds[item["name"]] = TEXT
        entity = signature.get("entity_column") or ""
        time_column = signature.get("time_column") or ""
        for name in columns:
            kinds.setdefault(name, DATETIME if name == time_column else TEXT if name == entity else NUMERIC)
        return cls(
            columns=columns,
            kinds=kinds,
            history_rows=int(signature.get("history_rows") or 1),
            entity_column=entity,
            time_column=time_column,
        )

    def v2_datatype(self, column: str) -> str:
        return "FP64" if self.kinds.get(column) == NUMERIC else "BYTES"


def loads_body(raw: bytes) -> dict:
    """Parses JSON, keeping NaN/Infinity literals so the check can name the field that holds them."""
    if not raw:
        raise InputError("body", "the request body is empty; send a JSON object")
    # No depth pre-scan on the prediction path (it would cost more than the parse): a body deep
    # enough to exhaust json's recursion is refused below, and anything nested deeper than a record
    # of scalars is refused by the format parsers. NUL is left to the field checks, which name it.
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise InputError("body", "the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError("body", f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:
        # Python refuses integer literals past 4300 digits (int_max_str_digits).
        raise InputError("body", f"unreadable JSON: {exc}") from None
    except RecursionError:
        raise InputError("body", f"the JSON is nested deeper than {max_json_depth()} levels") from None
    if not isinstance(body, dict):
        raise InputError("body", f"expected a JSON object, got {_json_type(body)}")
    return body


def _media_type(content_type: str | bytes | None) -> str:
    """`text/csv; charset=utf-8` -> `text/csv` (split by hand: the email module's parser is slow)."""
    if not content_type:
        return ""
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    return content_type.split(";", 1)[0].strip().lower()


def loads_mlflow_body(raw: bytes, content_type: str | bytes | None) -> dict:
    """An MLflow scoring body: `text/csv` is read as CSV; any other Content-Type (or none) as JSON,
    as the prediction endpoint always has. Bodies in a type MLflow reads and this server does not
    (Parquet) are a 415 naming what it reads."""
    if not raw:
        # Said the same whatever the Content-Type: some clients (Django's test client too) send none
        # with an empty body.
        raise InputError(
            "body",
            "the request body is empty; send a JSON object (dataframe_split, dataframe_records, "
            "instances or inputs) or text/csv with a header row",
        )
    media_type = _media_type(content_type)
    if media_type == CSV_FORMAT:
        return loads_csv(raw)
    if media_type in UNSUPPORTED_MLFLOW_TYPES:
        raise UnsupportedMediaType(
            "Content-Type",
            f"{media_type} is not read here; send application/json "
            "(dataframe_split, dataframe_records, instances or inputs) "
            "or text/csv",
        )
    return loads_body(raw)


class CsvColumn(list):
    """One column of a CSV body, its cells as text. A CSV cell is always text, so a numeric column's
    numbers are read when the column is checked against a version (`numbers`), where the error can
    name the column and row; JSON strings never pass for numbers."""

    def numbers(self, column: str) -> list[float]:
        # numpy reads the column at C speed; anything it refuses (or an infinity, which may be a
        # literal or an overflow) is read again cell by cell to name the row.
        joined = "".join(self)
        if "_" not in joined and joined.isascii():
            try:
                values = np.asarray(self, dtype=np.float64)
            except ValueError:
                pass
            else:
                if not np.isinf(values).any():
                    return values.tolist()
        return self._cell_by_cell(column)

    def _cell_by_cell(self, column: str) -> list[float]:
        values = []
        for i, cell in enumerate(self):
            text = cell.strip()
            try:
                # float() would also take "1_000" and non-ASCII digits; a CSV writer writes neither.
                if not text or "_" in text or not text.isascii():
                    raise ValueError(text)
                value = float(text)
            except ValueError:
                if not text:
                    raise InputError(column, f"row {i}: the cell is empty; send a number") from None
                raise InputError(column, f"row {i}: expected a number, got {_short(cell)}") from None
            if value in (math.inf, -math.inf) and "inf" not in text.lower():
                raise InputError(column, f"row {i}: the number is too large; send a finite number within ±1.8e308")
            values.append(value)
        return values


@dataclass(frozen=True)
class CsvTable:
    """A parsed `text/csv` body: column name -> CsvColumn, in header order."""

    columns: dict


def loads_csv(raw: bytes) -> dict:
    """A `text/csv` body, as `pandas.DataFrame.to_csv()` writes it: a header row naming the columns,
    then one row per record; a first column with an empty name (the DataFrame's index) is dropped and
    blank lines are skipped, as pandas.read_csv does. Read with the csv module, not pandas: it is
    bounded by the body limit and keeps the cells as text until a version's kinds say how to read them.
    Returns a body for parse_mlflow ({CSV_FORMAT: CsvTable}); a JSON body can never produce one."""
    if not raw.strip():
        raise InputError("body", "the request body is empty; send CSV: a header row, then one row per record")
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark (as Excel writes one) is not part of the header
    except UnicodeDecodeError:
        raise InputError("body", "the request body is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header, rows, lines = None, [], []
    try:
        for record in reader:
            if not record:
                continue
            if header is None:
                header = record
            else:
                rows.append(record)
                lines.append(reader.line_num)
    except csv.Error as exc:
        raise InputError("body", f"malformed CSV at line {reader.line_num}: {exc}") from None
    if header is None:  # e.g. only a byte-order mark
        raise InputError("body", "the CSV body is empty; send a header row and at least one row")
    names = list(header)
    width = len(names)
    skip = 1 if width > 1 and names[0] == "" else 0
    names = names[skip:]
    seen = set()
    for j, name in enumerate(names):
        if name == "":
            raise InputError("header", f"column {j + skip} of the header row has no name")
        if name in seen:
            raise InputError("header", f"column {name!r} appears twice")
        seen.add(name)
    for i, row in enumerate(rows):
        if len(row) != width:
            listed = ", ".join(["index", *names] if skip else names)
            raise InputError(f"rows[{i}]", f"line {lines[i]}: expected {width} values ({listed}), got {len(row)}")
    cells = list(zip(*rows))[skip:] if rows else [()] * len(names)
    return {CSV_FORMAT: CsvTable({name: CsvColumn(column) for name, column in zip(names, cells)})}


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _records_to_columns(records: list, field: str) -> dict[str, list]:
    if not records:
        raise InputError(field, "no rows were sent")
    names: list[str] = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InputError(f"{field}[{i}]", f"expected an object of column values, got {_json_type(record)}")
        if i == 0:
            names = list(record)
        elif len(record) != len(names) or any(name not in record for name in names):
            missing = [n for n in names if n not in record]
            extra = [n for n in record if n not in names]
            what = f"lacks {missing[0]!r}" if missing else f"has {extra[0]!r}, which row 0 does not"
            raise InputError(f"{field}[{i}]", f"every record needs the same columns; this one {what}")
    return {name: [record[name] for record in records] for name in names}


def _rows_to_columns(rows: list, names: list[str], field: str) -> dict[str, list]:
    if not rows:
        raise InputError(field, "no rows were sent")
    width = len(names)
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise InputError(f"{field}[{i}]", f"expected an array of {width} values, got {_json_type(row)}")
        if len(row) != width:
            raise InputError(f"{field}[{i}]", f"expected {width} values ({', '.join(names)}), got {len(row)}")
    return {name: [row[j] for row in rows] for j, name in enumerate(names)}


def _tensor_to_columns(value, spec: InputSpec, field: str) -> dict[str, list]:
    """`instances` / `inputs`: records, columns (object of arrays) or rows in signature order."""
    if isinstance(value, dict):
        if not value:
            raise InputError(field, "no columns were sent")
        columns = {}
        length = None
        for name, values in value.items():
            if not isinstance(values, list):
                values = [values]
            if length is None:
                length = len(values)
            elif len(values) != length:
                raise InputError(f"{field}.{name}", f"has {len(values)} values, other columns have {length}")
            columns[name] = values
        return columns
    if not isinstance(value, list):
        raise InputError(field, f"expected an array of rows or an object of columns, got {_json_type(value)}")
    if not value:
        raise InputError(field, "no rows were sent")
    if isinstance(value[0], dict):
        return _records_to_columns(value, field)
    if isinstance(value[0], list):
        return _rows_to_columns(value, list(spec.columns), field)
    if len(spec.columns) == 1:
        return {spec.columns[0]: list(value)}
    raise InputError(field, f"expected rows of {len(spec.columns)} values ({', '.join(spec.columns)})")


def parse_mlflow(body: dict, spec: InputSpec) -> tuple[dict[str, list], str]:
    """Columns from one of MLflow's four scoring formats, or a CSV body (loads_csv); returns
    (columns, the format's name)."""
    csv_table = body.get(CSV_FORMAT)
    if isinstance(csv_table, CsvTable):
        return dict(csv_table.columns), CSV_FORMAT
    present = [key for key in MLFLOW_FORMATS if key in body]
    unknown = [key for key in body if key not in MLFLOW_FORMATS and key not in ("routing_key", "params")]
    if unknown:
        raise InputError(
            unknown[0], f"unknown field; send one of {', '.join(MLFLOW_FORMATS)} (and optionally routing_key)"
        )
    if len(present) != 1:
        what = "none" if not present else ", ".join(present)
        raise InputError("body", f"send exactly one of {', '.join(MLFLOW_FORMATS)}; got {what}")
    key = present[0]
    value = body[key]
    if key == "dataframe_split":
        if not isinstance(value, dict):
            raise InputError(key, f"expected an object with 'columns' and 'data', got {_json_type(value)}")
        names, data = value.get("columns"), value.get("data")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InputError(f"{key}.columns", "expected an array of column names")
        if len(set(names)) != len(names):
            duplicate = next(n for n in names if names.count(n) > 1)
            raise InputError(f"{key}.columns", f"column {duplicate!r} appears twice")
        if not isinstance(data, list):
            raise InputError(f"{key}.data", f"expected an array of rows, got {_json_type(data)}")
        if not names and data:
            raise InputError(f"{key}.columns", "no columns were named")
        return _rows_to_columns(data, names, f"{key}.data"), key
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise InputError(key, f"expected an array of records, got {_json_type(value)}")
        return _records_to_columns(value, key), key
    return _tensor_to_columns(value, spec, key), key


def parse_v2(body: dict, spec: InputSpec) -> dict[str, list]:
    """Columns from an Open Inference Protocol V2 request: one input tensor per raw column, or a
    single [rows, columns] tensor in signature order."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InputError("inputs", "expected a non-empty array of input tensors {name, shape, datatype, data}")
    tensors = []
    for i, tensor in enumerate(inputs):
        where = f"inputs[{i}]"
        if not isinstance(tensor, dict):
            raise InputError(where, f"expected an object, got {_json_type(tensor)}")
        name, shape, datatype, data = (tensor.get(k) for k in ("name", "shape", "datatype", "data"))
        if not isinstance(name, str) or not name:
            raise InputError(f"{where}.name", "each input needs a name")
        where = f"inputs[{i}] ({name})"
        if (
            not isinstance(shape, list)
            or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise InputError(f"{where}.shape", "expected an array of non-negative integers")
        if datatype not in V2_TYPES:
            raise InputError(f"{where}.datatype", f"unknown datatype {datatype!r}")
        if not isinstance(data, list):
            raise InputError(f"{where}.data", f"expected an array, got {_json_type(data)}")
        flat = _flatten(data)
        expected = math.prod(shape)
        if len(flat) != expected:
            raise InputError(f"{where}.data", f"shape {shape} needs {expected} values, got {len(flat)}")
        tensors.append((name, shape, datatype, flat, where))
    names = [t[0] for t in tensors]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise InputError("inputs", f"input {duplicate!r} appears twice")
    if len(tensors) == 1 and tensors[0][0] not in spec.columns and len(tensors[0][1]) == 2 and len(spec.columns) > 1:
        name, shape, datatype, flat, where = tensors[0]
        rows, width = shape
        if width != len(spec.columns):
            raise InputError(
                f"{where}.shape",
                f"a [rows, columns] input needs {len(spec.columns)} columns ({', '.join(spec.columns)})",
            )
        return {column: flat[j::width] for j, column in enumerate(spec.columns)}
    columns = {}
    length = None
    for name, shape, datatype, flat, where in tensors:
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise InputError(f"{where}.shape", "a column input has shape [rows] or [rows, 1]")
        if length is None:
            length = shape[0]
        elif shape[0] != length:
            raise InputError(f"{where}.shape", f"has {shape[0]} rows, other inputs have {length}")
        kind = spec.kinds.get(name)
        if kind is not None and (kind == NUMERIC) != (datatype in V2_NUMERIC_TYPES):
            raise InputError(
                f"{where}.datatype", f"column {name!r} needs datatype {spec.v2_datatype(name)}, got {datatype}"
            )
        if datatype == "BOOL":
            flat = [float(v) if isinstance(v, bool) else v for v in flat]
        columns[name] = flat
    return columns


def _flatten(data: list) -> list:
    if not any(isinstance(v, list) for v in data):
        return data
    out = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            out.append(value)
        else:
            stack.pop()
    return out


class CheckedRows:
    """A request's raw rows after check_columns, column by column: numeric columns as float64
    arrays, text and date columns as lists of str (entity keys may be ints). The preprocessor reads it
    as it reads a DataFrame (`columns`, `len()`, `rows[name]`) without one being built: on the
    prediction path a DataFrame cost more than the model (issue 11's profile)."""

    __slots__ = ("columns", "data", "n_rows")

    def __init__(self, data: dict, n_rows: int):
        self.data = data
        self.columns = tuple(data)
        self.n_rows = n_rows

    def __len__(self) -> int:
        return self.n_rows

    def __getitem__(self, name: str):
        return self.data[name]

    def to_frame(self) -> pd.DataFrame:
        """The same rows as a DataFrame (for code that wants one, and the train/serve equality test)."""
        return pd.DataFrame(self.data)

    @classmethod
    def concat(cls, parts: list[CheckedRows]) -> CheckedRows:
        """The rows of several requests (same columns) one after the other: one model call for all."""
        if len(parts) == 1:
            return parts[0]
        data = {}
        for name in parts[0].columns:
            values = [part.data[name] for part in parts]
            data[name] = (
                np.concatenate(values) if isinstance(values[0], np.ndarray) else [v for vs in values for v in vs]
            )
        return cls(data, sum(part.n_rows for part in parts))


def check_columns(columns: dict[str, list], spec: InputSpec, *, known: set[str], max_rows: int) -> CheckedRows:
    """The raw rows `spec` needs, as CheckedRows, after checking names, types, values and size.

    `known` is every column some served version of the deployment uses: a column outside it is a
    client mistake, a column another version needs is simply not passed to this one.
    """
    extra = [name for name in columns if name not in known and name not in spec.columns]
    if extra:
        raise InputError(extra[0], f"unexpected column; this deployment takes {', '.join(spec.columns)}")
    missing = [name for name in spec.columns if name not in columns]
    if missing:
        raise InputError(missing[0], f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    n_rows = len(next(iter(columns.values()))) if columns else 0
    if n_rows == 0:
        raise InputError("rows", "no rows were sent")
    if n_rows > max_rows:
        raise InputError("rows", f"{n_rows} rows is more than the limit of {max_rows} per request")
    table = {}
    for name in spec.columns:
        values = columns[name]
        kind = spec.kinds.get(name, NUMERIC)
        if kind == NUMERIC:
            if isinstance(values, CsvColumn):
                values = values.numbers(name)
            for i, value in enumerate(values):
                if type(value) is float:
                    if value != value or value in (math.inf, -math.inf):
                        raise InputError(name, f"row {i}: {value} is not allowed; send a finite number")
                elif type(value) is int:
                    # Python ints are unbounded; float64 is not (np.asarray would raise OverflowError).
                    if abs(value) > sys.float_info.max:
                        raise InputError(
                            name, f"row {i}: the number is too large; send a finite number within ±1.8e308"
                        )
                else:
                    if value is None:
                        raise InputError(name, f"row {i}: null is not allowed; send a number")
                    raise InputError(name, f"row {i}: expected a number, got {_json_type(value)} {_short(value)}")
        else:
            # Entity keys may be numbers (customer 17); anything else textual must be a string.
            allowed = (str, int) if name == spec.entity_column else (str,)
            for i, value in enumerate(values):
                if type(value) not in allowed:
                    raise InputError(
                        name,
                        f"row {i}: expected a string{' date' if kind == DATETIME else ''}, got {_json_type(value)} {_short(value)}",
                    )
                if type(value) is str and "\x00" in value:
                    raise InputError(
                        name, f"row {i}: the value holds a NUL character (\\u0000), which no column may hold"
                    )
        table[name] = np.asarray(values, dtype=np.float64) if kind == NUMERIC else list(values)
    return CheckedRows(table, n_rows)


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
