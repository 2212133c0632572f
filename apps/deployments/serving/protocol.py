"""The two prediction protocols' request options and response bodies, shared by the DRF views and
the ASGI fast path so both answer byte for byte alike."""
from __future__ import annotations

from dataclasses import dataclass

from .inputs import InputError

MLFLOW = "mlflow"
V2 = "v2"
V2_OUTPUTS = ("predictions", "rows")


@dataclass(frozen=True)
class RequestOptions:
    routing_key: str | None
    client_id: str | None = None
    outputs: tuple[str, ...] = V2_OUTPUTS


def routing_key_of(header: str | None, value) -> str | None:
    """The sticky key: header X-Routing-Key, else the body's field."""
    if header:
        return header
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise InputError("routing_key", "expected a non-empty string (e.g. a customer or portfolio id)")
    return str(value)


def request_options(protocol: str, body: dict, routing_header: str | None) -> RequestOptions:
    if protocol == MLFLOW:
        return RequestOptions(routing_key=routing_key_of(routing_header, body.get("routing_key")))
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InputError("parameters", "expected an object")
    client_id = body.get("id")
    if client_id is not None and not isinstance(client_id, str):
        raise InputError("id", "expected a string")
    requested = body.get("outputs")
    if requested is not None and (not isinstance(requested, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested)):
        raise InputError("outputs", "expected an array of {name}")
    names = tuple(o["name"] for o in requested) if requested else V2_OUTPUTS
    unknown = [n for n in names if n not in V2_OUTPUTS]
    if unknown:
        raise InputError("outputs", f"unknown output {unknown[0]!r}; this model has predictions and rows")
    return RequestOptions(routing_key=routing_key_of(routing_header, parameters.get("routing_key")),
                          client_id=client_id, outputs=names)


def v2_datatype(values: list) -> str:
    if values and all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def response_body(protocol: str, deployment: str, prediction, options: RequestOptions) -> dict:
    if protocol == MLFLOW:
        return {"predictions": prediction.predictions, "model_version": prediction.model_version,
                "model_name": prediction.model_name, "request_id": prediction.request_id, "rows": prediction.row_labels}
    values = {"predictions": prediction.predictions, "rows": [str(r) for r in prediction.row_labels]}
    outputs = []
    for name in options.outputs:
        data = values[name]
        datatype = "BYTES" if name == "rows" else ("FP64" if prediction.task == "regression" else v2_datatype(data))
        outputs.append({"name": name, "shape": [len(data)], "datatype": datatype, "data": data})
    return {"model_name": deployment, "model_version": prediction.model_version,
            "id": options.client_id or prediction.request_id,
            "parameters": {"request_id": prediction.request_id, "model": prediction.model_name}, "outputs": outputs}


def response_headers(prediction) -> dict[str, str]:
    return {"X-Request-Id": prediction.request_id, "X-Model-Version": prediction.model_version}


def error_body(protocol: str, message: str, **extra) -> dict:
    """REST: {"detail", "field"?, "needed_rows"?, "model_version"?}; V2: {"error"} as the protocol says."""
    if protocol == V2:
        return {"error": message}
    return {"detail": message, **{k: v for k, v in extra.items() if v is not None}}


def describe_error(exc: Exception, deployment: str) -> tuple[int, str, dict] | None:
    """(status, message, extra fields) for an error of the prediction path; None if it is not one."""
    from .predict import PredictionFailed, PredictionInputError
    from .state import DeploymentNotFound, ModelUnavailable

    if isinstance(exc, PredictionInputError):
        return 400, f"{exc.field}: {exc.message}", {"field": exc.field, "needed_rows": exc.needed_rows,
                                                    "model_version": exc.version}
    if isinstance(exc, InputError):
        return 400, f"{exc.field}: {exc.message}", {"field": exc.field}
    if isinstance(exc, DeploymentNotFound):
        return 404, f"No deployment named {deployment!r}.", {}
    if isinstance(exc, ModelUnavailable):
        return 503, str(exc), {}
    if isinstance(exc, PredictionFailed):
        return 500, str(exc), {}
    return None
