"""The two prediction protocols' request options and response bodies, shared by the DRF views and
the ASGI fast path so both answer byte for byte alike."""

from __future__ import annotations

import json
from dataclasses import dataclass

from apps.datasets.choices import DatasetTask

from .errors import PredictionFailed, PredictionInputError
from .inputs import InputError
from .state import DeploymentNotFound, ModelUnavailable
from .v2 import PROBABILITIES, VersionNotServed, binary_outputs, encode_response, v2_datatype

MLFLOW = "mlflow"
V2 = "v2"
V2_OUTPUTS = ("predictions", "rows")
# Every output a V2 request may name. "predict" is what KServe's scikit-learn server calls the labels.
V2_OUTPUT_NAMES = (*V2_OUTPUTS, PROBABILITIES)
V2_OUTPUT_ALIASES = {"predict": "predictions"}
MLFLOW_PARAMS = (PROBABILITIES,)
# MLflow's error codes (mlflow.protos.databricks_pb2, the statuses mlflow.exceptions maps them to),
# for the MLflow-format endpoints' errors. A 400 about `params` is INVALID_PARAMETER_VALUE, as
# MLflow's own params checks answer; any other 400 BAD_REQUEST, as its scoring server answers
# unreadable, malformed or incompatible input.
MLFLOW_ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_CONFLICT",
    429: "REQUEST_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    503: "TEMPORARILY_UNAVAILABLE",
}


@dataclass(frozen=True)
class RequestOptions:
    routing_key: str | None
    client_id: str | None = None
    # V2: the output tensors to answer, in the client's order and spelling (aliases included).
    outputs: tuple[str, ...] = V2_OUTPUTS
    probabilities: bool = False
    # V2: the outputs to answer as binary tensor data (binary_data / binary_data_output), see v2.py.
    binary_outputs: frozenset = frozenset()


def routing_key_of(header: str | None, value) -> str | None:
    """The sticky key: header X-Routing-Key, else the body's field."""
    if header:
        return header
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise InputError("routing_key", "expected a non-empty string (e.g. a customer or portfolio id)")
    return str(value)


def _mlflow_params(body: dict) -> dict:
    """MLflow's `params` object: only the keys this server knows, each of the right type. MLflow's
    scoring server drops params a model does not take with a log line; here they are refused, so a
    client never believes a parameter changed an answer it did not change. The portal's model types
    take no parameters at prediction time (ModelType has no such hook), so only the server's own
    options are known."""
    params = body.get("params")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InputError("params", 'expected an object, e.g. {"probabilities": true}')
    for key, value in params.items():
        if key not in MLFLOW_PARAMS:
            raise InputError(
                f"params.{key}",
                f"unknown parameter; the models served here take no prediction-time "
                f"parameters, and this server's own are: {', '.join(MLFLOW_PARAMS)} "
                f"(true or false)",
            )
        if not isinstance(value, bool):
            raise InputError(f"params.{key}", "expected true or false")
    return params


def _v2_outputs(body: dict) -> tuple[str, ...]:
    requested = body.get("outputs")
    if requested is None:
        return V2_OUTPUTS
    if not isinstance(requested, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested
    ):
        raise InputError("outputs", "expected an array of {name}")
    names = tuple(o["name"] for o in requested)
    if not names:
        return V2_OUTPUTS
    unknown = [n for n in names if n not in V2_OUTPUT_NAMES and n not in V2_OUTPUT_ALIASES]
    if unknown:
        raise InputError("outputs", f"unknown output {unknown[0]!r}; this model has {', '.join(V2_OUTPUT_NAMES)}")
    seen = set()
    for name in names:
        canonical = V2_OUTPUT_ALIASES.get(name, name)
        if canonical in seen:
            raise InputError("outputs", f"output {name!r} is asked for twice")
        seen.add(canonical)
    return names


def probabilities_field(protocol: str) -> str:
    """Where a request for class probabilities sits in the body (a refusal names it)."""
    return "outputs" if protocol == V2 else f"params.{PROBABILITIES}"


def probabilities_requested(protocol: str, body: dict) -> bool:
    """Whether the client asked for class probabilities: MLflow `"params": {"probabilities": true}`,
    V2 an output named "probabilities". InputError for a malformed `params` / `outputs`."""
    if protocol == MLFLOW:
        return bool(_mlflow_params(body).get(PROBABILITIES))
    return PROBABILITIES in _v2_outputs(body)


def request_options(protocol: str, body: dict, routing_header: str | None) -> RequestOptions:
    if protocol == MLFLOW:
        return RequestOptions(
            routing_key=routing_key_of(routing_header, body.get("routing_key")),
            probabilities=probabilities_requested(MLFLOW, body),
        )
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InputError("parameters", "expected an object")
    client_id = body.get("id")
    if client_id is not None and not isinstance(client_id, str):
        raise InputError("id", "expected a string")
    names = _v2_outputs(body)
    return RequestOptions(
        routing_key=routing_key_of(routing_header, parameters.get("routing_key")),
        client_id=client_id,
        outputs=names,
        probabilities=PROBABILITIES in names,
        binary_outputs=binary_outputs(body, names),
    )


def response_body(protocol: str, deployment: str, prediction, options: RequestOptions) -> dict:
    """The answer in the protocol's shape. Class probabilities (rows in the order of `classes`) go in
    only when asked for; the prediction computed them anyway for a classifier (see predict.py)."""
    probabilities = prediction.probabilities if options.probabilities else None
    if protocol == MLFLOW:
        body = {"predictions": prediction.predictions}
        if probabilities is not None:
            body["probabilities"] = probabilities
            body["classes"] = prediction.classes
        body.update(
            {
                "model_version": prediction.model_version,
                "model_name": prediction.model_name,
                "request_id": prediction.request_id,
                "rows": prediction.row_labels,
            }
        )
        return body
    outputs = []
    for name in options.outputs:
        canonical = V2_OUTPUT_ALIASES.get(name, name)
        if canonical == PROBABILITIES:
            width = len(prediction.classes or ())
            outputs.append(
                {
                    "name": name,
                    "shape": [len(probabilities), width],
                    "datatype": "FP32",
                    "data": [p for row in probabilities for p in row],
                    "parameters": {"classes": prediction.classes},
                }
            )
            continue
        data = prediction.predictions if canonical == "predictions" else [str(r) for r in prediction.row_labels]
        if canonical == "rows":
            datatype = "BYTES"
        else:
            datatype = "FP64" if prediction.task == DatasetTask.REGRESSION else v2_datatype(data)
        outputs.append({"name": name, "shape": [len(data)], "datatype": datatype, "data": data})
    return {
        "model_name": deployment,
        "model_version": prediction.model_version,
        "id": options.client_id or prediction.request_id,
        "parameters": {"request_id": prediction.request_id, "model": prediction.model_name},
        "outputs": outputs,
    }


def render(protocol: str, body: dict, options: RequestOptions) -> tuple[bytes, dict[str, str]]:
    """The answer's bytes and content headers: JSON, or for a V2 client that asked for binary outputs
    the JSON header followed by their tensors (v2.encode_response)."""
    if protocol == V2 and options.binary_outputs:
        return encode_response(body, options.binary_outputs)
    return json.dumps(body, separators=(",", ":")).encode(), {"Content-Type": "application/json"}


def response_headers(prediction) -> dict[str, str]:
    return {"X-Request-Id": prediction.request_id, "X-Model-Version": prediction.model_version}


def mlflow_error_code(status: int | None, field: str | None = None) -> str:
    if status == 400 and field is not None and (field == "params" or field.startswith("params.")):
        return "INVALID_PARAMETER_VALUE"
    if status in MLFLOW_ERROR_CODES:
        return MLFLOW_ERROR_CODES[status]
    return "INTERNAL_ERROR" if status is not None and status >= 500 else "BAD_REQUEST"


def error_body(protocol: str, message: str, status: int | None = None, **extra) -> dict:
    """REST (MLflow scoring): {"error_code", "message"} as MLflow's scoring server answers, plus the
    portal's {"detail" (the same text), "field"?, "needed_rows"?, "model_version"?}; pass the HTTP
    `status`, which the error code follows. V2: {"error"} as the protocol says."""
    if protocol == V2:
        return {"error": message}
    return {
        "error_code": mlflow_error_code(status, extra.get("field")),
        "message": message,
        "detail": message,
        **{k: v for k, v in extra.items() if v is not None},
    }


def describe_error(exc: Exception, deployment: str) -> tuple[int, str, dict] | None:
    """(status, message, extra fields) for an error of the prediction path; None if it is not one."""
    if isinstance(exc, PredictionInputError):
        return (
            400,
            f"{exc.field}: {exc.message}",
            {"field": exc.field, "needed_rows": exc.needed_rows, "model_version": exc.version},
        )
    if isinstance(exc, InputError):
        # UnsupportedMediaType is a 415.
        return getattr(exc, "status", 400), f"{exc.field}: {exc.message}", {"field": exc.field}
    if isinstance(exc, DeploymentNotFound):
        return 404, f"No deployment named {deployment!r}.", {}
    if isinstance(exc, VersionNotServed):
        return 404, str(exc), {}
    if isinstance(exc, ModelUnavailable):
        return 503, str(exc), {}
    if isinstance(exc, PredictionFailed):
        return 500, str(exc), {}
    return None
