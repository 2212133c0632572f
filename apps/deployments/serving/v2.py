"""The Open Inference Protocol V2 on the wire, apart from any transport.

The binary tensor data extension: a request may carry its tensors after the JSON header instead of
in it. The header's length is `Inference-Header-Content-Length`; each input that does so says how
many bytes of the rest are its own (`parameters.binary_data_size`), in input order, nothing left
over. Fixed-size datatypes are their little-endian values back to back; BYTES elements are each a
4-byte little-endian length and then that many bytes. A client asks for outputs the same way: per
requested output `parameters.binary_data`, or for all of them at once (when an output does not say)
the request's `parameters.binary_data_output`; the answer is then the JSON header, whose binary outputs
carry `parameters.binary_data_size` instead of `data`, followed by their bytes
(`Content-Type: application/octet-stream`, `Inference-Header-Content-Length`).

`decode_request` turns such a body into the plain JSON request (binary inputs get their `data` as
lists), so everything after it (options, routing, input checks, the prediction log) sees one shape;
`encode_response` does the reverse for the answer. The per-tensor halves, `decode_tensor` and
`encode_tensor`, are the same bytes a gRPC server puts in `raw_input_contents` /
`raw_output_contents`. Everything here answers a malformed request with an InputError naming the
field (400).

What a model is and whether it is ready (`model_metadata`, `model_ready`, `server_ready`) is answered
here too, for both transports: the HTTP views (apps.deployments.api_predict) and the gRPC server
(serving/grpc_service.py) only turn these answers and errors into their own wire form.
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np
from django.conf import settings

from .inputs import InputError, loads_body

PROBABILITIES = (
    "probabilities"  # the classifier's output tensor (and MLflow's params key, apps.deployments.serving.protocol)
)

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_CONTENT_TYPE = "application/octet-stream"
SERVER_NAME = "mlops-portal"
# What this server implements beyond the core protocol (the names Triton's server metadata uses).
EXTENSIONS = ("binary_tensor_data",)

# Little-endian, as the extension says, whatever the host's byte order.
NUMPY_DTYPES = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_LENGTH = struct.Struct("<I")


class ModelNotFound(LookupError):
    """No deployment (a V2 "model") of that name (HTTP 404, gRPC NOT_FOUND)."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"no model named {name!r}")


class VersionNotServed(LookupError):
    """A versioned route (`/v2/models/<name>/versions/<v>/…`) names a version the deployment does not
    serve (the API answers 404, naming those it does)."""

    def __init__(self, deployment: str, version: str, served: list[str]):
        self.deployment, self.version, self.served = deployment, version, served
        listed = ", ".join(served) if served else "none"
        super().__init__(
            f"model {deployment!r} has no version {version!r} being served; it serves version"
            f"{'s' if len(served) != 1 else ''} {listed}"
        )


def served_versions(versions) -> list[str]:
    """Version labels in numeric order."""
    return sorted({str(v) for v in versions}, key=lambda label: (len(label), label))


def pinned_version_id(table, version: str) -> int:
    """The id of `version` (its number, as in `model_version`) among the versions `table` routes to
    or mirrors (loaded or not). VersionNotServed otherwise."""
    candidates = {
        **{v.label: v.version_id for v in table.unavailable.values()},
        **{v.label: v.version_id for v in table.versions.values()},
    }
    if version not in candidates:
        raise VersionNotServed(table.name, version, served_versions(candidates))
    return candidates[version]


def server_metadata() -> dict:
    return {
        "name": SERVER_NAME,
        "version": str(settings.SPECTACULAR_SETTINGS.get("VERSION", "")),
        "extensions": list(EXTENSIONS),
    }


def decode_tensor(datatype: str, raw: bytes, count: int, where: str, size_field: str | None = None) -> list:
    """`count` values of `datatype` from their binary form: numbers as Python numbers, BYTES as str
    (UTF-8; this server's text inputs are dates, tickers and the like). `size_field` is what a
    length mismatch blames: the input's `parameters.binary_data_size` over HTTP, its
    `raw_input_contents[i]` over gRPC."""
    size_field = size_field or f"{where}.parameters.binary_data_size"
    if datatype == "BYTES":
        return _decode_bytes(raw, count, where, size_field)
    dtype = NUMPY_DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise InputError(f"{where}.datatype", f"unknown datatype {datatype!r}")
    if len(raw) != count * dtype.itemsize:
        raise InputError(size_field, f"{count} values of {datatype} are {count * dtype.itemsize} bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype=dtype).tolist()


def _decode_bytes(raw: bytes, count: int, where: str, size_field: str) -> list:
    values, offset, size = [], 0, len(raw)
    for i in range(count):
        if offset + 4 > size:
            raise InputError(
                size_field, f"BYTES element {i} of {count} is missing: the data ends after {len(values)} elements"
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > size:
            raise InputError(size_field, f"BYTES element {i} says {length} bytes but only {size - offset} remain")
        try:
            values.append(raw[offset : offset + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise InputError(where, f"BYTES element {i} is not UTF-8 text") from None
        offset += length
    if offset != size:
        raise InputError(
            size_field, f"{size - offset} bytes are left after the {count} BYTES elements the shape asks for"
        )
    return values


def encode_tensor(datatype: str, data: list) -> bytes:
    """The binary form of a flat list of values (BYTES: each value's text, length-prefixed)."""
    if datatype == "BYTES":
        parts = []
        for value in data:
            encoded = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(_LENGTH.pack(len(encoded)))
            parts.append(encoded)
        return b"".join(parts)
    return np.asarray(data, dtype=NUMPY_DTYPES[datatype]).tobytes()


def _header_length(value: str | None, size: int) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit():
        raise InputError(HEADER_LENGTH, f"expected the byte length of the JSON header, got {value[:40]!r}")
    length = int(value)
    if not 0 < length <= size:
        raise InputError(HEADER_LENGTH, f"{length} is not within the body's {size} bytes")
    return length


def refuse_shared_memory(parameters: dict, where: str) -> None:
    for key in parameters:
        if key.startswith("shared_memory"):
            raise InputError(f"{where}.parameters.{key}", "shared memory is not supported; send the data in the body")


def decode_request(raw: bytes, header_length: str | None) -> dict:
    """The request body as JSON, with every binary input's `data` filled in from the bytes after the
    header. `header_length` is the Inference-Header-Content-Length header (None: a JSON-only body)."""
    length = _header_length(header_length, len(raw))
    try:
        body = loads_body(raw if length is None else raw[:length])
    except InputError as exc:
        # Not UTF-8, or JSON with bytes after it: binary tensors sent without the header that says
        # where the JSON ends (what tritonclient's default encoding looks like to a JSON-only server).
        if length is not None or not (exc.message.endswith("not UTF-8 text") or exc.message.endswith("Extra data")):
            raise
        raise InputError(
            "body",
            f"{exc.message} (a body with binary tensor data needs the {HEADER_LENGTH} "
            "header: the byte length of its JSON part)",
        ) from None
    offset = length if length is not None else len(raw)
    inputs = body.get("inputs")
    if isinstance(inputs, list):
        for i, tensor in enumerate(inputs):
            if not isinstance(tensor, dict):
                continue  # parse_v2 names it
            where = f"inputs[{i}]" + (f" ({tensor['name']})" if isinstance(tensor.get("name"), str) else "")
            parameters = tensor.get("parameters")
            if parameters is None:
                continue
            if not isinstance(parameters, dict):
                raise InputError(f"{where}.parameters", "expected an object")
            refuse_shared_memory(parameters, where)
            if "binary_data_size" not in parameters:
                continue
            size = parameters["binary_data_size"]
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise InputError(f"{where}.parameters.binary_data_size", "expected a non-negative integer")
            if length is None:
                raise InputError(
                    f"{where}.parameters.binary_data_size",
                    f"binary tensor data needs the {HEADER_LENGTH} header (the JSON header's length)",
                )
            if "data" in tensor:
                raise InputError(f"{where}.data", "send the values either in `data` or as binary data, not both")
            if offset + size > len(raw):
                raise InputError(
                    f"{where}.parameters.binary_data_size",
                    f"{size} bytes asked for, but only {len(raw) - offset} remain in the body",
                )
            shape = tensor.get("shape")
            if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
            ):
                raise InputError(f"{where}.shape", "expected an array of non-negative integers")
            tensor["data"] = decode_tensor(tensor.get("datatype"), raw[offset : offset + size], math.prod(shape), where)
            offset += size
    if offset != len(raw):
        raise InputError(
            "body",
            f"{len(raw) - offset} bytes after the JSON header belong to no input "
            "(each binary input says its parameters.binary_data_size)",
        )
    return body


def binary_outputs(body: dict, names: tuple[str, ...]) -> frozenset[str]:
    """Which of the answered outputs (`names`, as the client spelled them) go as binary data."""
    parameters = body.get("parameters") or {}
    default = parameters.get("binary_data_output", False) if isinstance(parameters, dict) else False
    if not isinstance(default, bool):
        raise InputError("parameters.binary_data_output", "expected true or false")
    chosen = dict.fromkeys(names, default)
    requested = body.get("outputs")
    for i, output in enumerate(requested if isinstance(requested, list) else ()):
        parameters = output.get("parameters")
        if parameters is None:
            continue
        where = f"outputs[{i}] ({output['name']})"
        if not isinstance(parameters, dict):
            raise InputError(f"{where}.parameters", "expected an object")
        refuse_shared_memory(parameters, where)
        if "classification" in parameters:
            raise InputError(
                f"{where}.parameters.classification",
                "the classification extension is not supported; ask for the 'probabilities' output",
            )
        if "binary_data" in parameters:
            if not isinstance(parameters["binary_data"], bool):
                raise InputError(f"{where}.parameters.binary_data", "expected true or false")
            chosen[output["name"]] = parameters["binary_data"]
    return frozenset(name for name, binary in chosen.items() if binary)


def encode_response(body: dict, binary: frozenset[str]) -> tuple[bytes, dict[str, str]]:
    """The answer with the outputs named in `binary` moved after the JSON header; (payload, headers
    that say so). The JSON is written as every other answer is (compact separators)."""
    outputs, chunks = [], []
    for output in body["outputs"]:
        if output["name"] not in binary:
            outputs.append(output)
            continue
        chunk = encode_tensor(output["datatype"], output["data"])
        chunks.append(chunk)
        header = {k: v for k, v in output.items() if k != "data"}
        header["parameters"] = {**output.get("parameters", {}), "binary_data_size": len(chunk)}
        outputs.append(header)
    head = json.dumps({**body, "outputs": outputs}, separators=(",", ":")).encode()
    return head + b"".join(chunks), {"Content-Type": BINARY_CONTENT_TYPE, HEADER_LENGTH: str(len(head))}


def v2_datatype(values: list) -> str:
    if values and all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def server_ready() -> bool:
    """Ready to serve: the database and Redis answer (what a load balancer's probe asks)."""
    from apps.core.health import check_database, check_redis

    return not any(problem for problem in (check_database(), check_redis()))


def _prediction_datatype(signature: dict) -> str:
    from apps.datasets.choices import DatasetTask

    if signature.get("task") == DatasetTask.REGRESSION:
        return "FP64"
    classes = signature.get("classes") or []
    return v2_datatype(classes) if classes else "INT64"


def model_outputs(signature: dict) -> list[dict]:
    """The output tensors a request may name; a classifier's "probabilities" has one column per
    class, in the order of the `classes` parameter."""
    from apps.datasets.choices import DatasetTask

    outputs = [
        {"name": "predictions", "datatype": _prediction_datatype(signature), "shape": [-1]},
        {"name": "rows", "datatype": "BYTES", "shape": [-1]},
    ]
    if signature.get("task") == DatasetTask.CLASSIFICATION:
        classes = signature.get("classes") or []
        outputs.append({"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, len(classes) if classes else -1]})
    return outputs


def _serving_row(name: str, rows, version: str):
    """The serving row (traffic or shadow) of `version` among `rows`, else VersionNotServed."""
    for row in rows:
        if str(row.model_version.version) == version:
            return row
    raise VersionNotServed(name, version, served_versions(r.model_version.version for r in rows))


def _deployment(name: str):
    from ..selectors import deployment_get

    deployment = deployment_get(name=name)
    if deployment is None:
        raise ModelNotFound(name)
    return deployment


def model_metadata(name: str, version: str | None = None) -> dict:
    """The model's metadata (inputs from the serving signature, outputs, versions served), or with
    `version` that one version's. ModelNotFound, VersionNotServed."""
    from ..selectors import deployment_serving_versions, deployment_signature, model_version_serving_signature

    deployment = _deployment(name)
    rows = deployment_serving_versions(deployment=deployment)
    if version is None:
        signature, versions = deployment_signature(deployment=deployment), [r.model_version for r in rows]
    else:
        row = _serving_row(name, rows, version)
        signature, versions = model_version_serving_signature(version=row.model_version), [row.model_version]
    frameworks = sorted({v.framework for v in versions})
    return {
        "name": name,
        "versions": [str(v.version) for v in versions],
        "platform": f"mlops-portal/{'+'.join(frameworks)}",
        "inputs": [
            {"name": c["name"], "datatype": c["v2_datatype"], "shape": [-1]} for c in signature.get("inputs", [])
        ],
        "outputs": model_outputs(signature),
        "parameters": {
            "task": signature.get("task"),
            "history_rows": signature.get("history_rows", 1),
            "entity_column": signature.get("entity_column"),
            "time_column": signature.get("time_column"),
            "classes": signature.get("classes"),
            "model_version": signature.get("model_version"),
        },
    }


def model_ready(name: str, version: str | None = None) -> bool:
    """Whether this process can serve the model (its table built, a routed version loaded), or with
    `version` that version. ModelNotFound, VersionNotServed."""
    from ..selectors import deployment_serving_versions
    from .state import DeploymentNotFound, ModelUnavailable, serving_state

    try:
        table = serving_state.table(name)
    except DeploymentNotFound:
        raise ModelNotFound(name) from None
    except ModelUnavailable:
        if version is not None:
            # No table to ask: whether the version is served at all is the database's answer.
            _serving_row(name, deployment_serving_versions(deployment=_deployment(name)), version)
        return False
    if version is None:
        return True
    # Routed to but not loadable on this host (table.unavailable says why): not ready.
    return pinned_version_id(table, version) in table.versions
