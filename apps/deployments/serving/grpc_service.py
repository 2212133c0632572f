"""The Open Inference Protocol V2 over gRPC: `inference.GRPCInferenceService`, the KServe / Triton
proto whose generated code tritonclient ships (`tritonclient.grpc.service_pb2[_grpc]`), so
`tritonclient.grpc` works against the portal as `tritonclient.http` does against `/v2`.

Each RPC is the HTTP V2 endpoint's steps with the wire form swapped, nothing of its own:

    token (the REST tokens: metadata `authorization: Bearer <key>` or `Token <key>`, cached like the
    fast path's) → portal role → request → V2 JSON body → route (weights; sticky key: the
    request's `routing_key` parameter, or metadata `x-routing-key` as HTTP's header) → throttle
    ("predict" scope, the same Redis counters as REST) → check → predict → log → answer

`ServerLive` and `ServerReady` need no token (probes); every other RPC answers UNAUTHENTICATED
without one and PERMISSION_DENIED for an account with no portal role. A request becomes the JSON
body the HTTP path sees (`request_body`), tensors from `raw_input_contents` (what tritonclient sends
by default: the binary extension's bytes, BYTES length-prefixed) or from the typed `contents`; the
answer goes back in `raw_output_contents`. Errors are the HTTP path's (`protocol.describe_error`) with
the status mapped to a gRPC code: 400 INVALID_ARGUMENT naming the input, 404 NOT_FOUND, 429
RESOURCE_EXHAUSTED, 503 UNAVAILABLE (no loadable version, routing switching).

Inference goes through the HTTP fast path's Batcher (apps.deployments.serving.fastpath), on an event
loop of its own: the same micro-batching per deployment (`max_batch_size`, `max_batch_wait_ms`), the
same throttle round trip per batch, on DEPLOYMENTS_INFERENCE_THREADS threads (default 1) whatever the
RPC thread pool's size, since Keras and torch do not promise that one model object may be called
from several threads at once. The RPC threads only check tokens, decode and encode.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import wraps

import grpc
from django.db import close_old_connections
from rest_framework import exceptions
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from apps.core.permissions import PREDICT_DENIED
from apps.core.roles import may_predict

from ..auth import split_authorization, verify_token
from .fastpath import Batcher, InferenceJob, Throttled
from .inputs import InputError
from .protocol import V2, describe_error, request_options, response_body
from .state import serving_state
from .v2 import (
    ModelNotFound,
    VersionNotServed,
    decode_tensor,
    encode_tensor,
    model_metadata,
    model_ready,
    refuse_shared_memory,
    server_metadata,
    server_ready,
)

logger = logging.getLogger(__name__)

ROUTING_KEY_METADATA = "x-routing-key"
STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
}
# Where each datatype's values sit in InferTensorContents when they are not in raw_input_contents.
# FP16 has no typed field: raw only, as in Triton.
CONTENTS_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


class RpcFailure(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def grpc_code(status: int) -> grpc.StatusCode:
    if status in STATUS_CODES:
        return STATUS_CODES[status]
    return grpc.StatusCode.INTERNAL if status >= 500 else grpc.StatusCode.INVALID_ARGUMENT


def _failure(exc: Exception, model: str) -> RpcFailure:
    """The gRPC status of an exception, from the HTTP status the V2 endpoints answer it with."""
    if isinstance(exc, RpcFailure):
        return exc
    if isinstance(exc, Throttled):
        return RpcFailure(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"Request was throttled. Expected available in {retry_after(exc)} seconds.",
        )
    if isinstance(exc, exceptions.APIException):  # 401, 403 from the token and role checks
        return RpcFailure(grpc_code(exc.status_code), str(exc.detail))
    if isinstance(exc, (ModelNotFound, VersionNotServed)):
        return RpcFailure(grpc.StatusCode.NOT_FOUND, str(exc))
    described = describe_error(exc, model)
    if described is None:
        logger.exception("gRPC request for %s failed", model or "the server")
        return RpcFailure(grpc.StatusCode.INTERNAL, "internal error")
    status, message, _extra = described
    return RpcFailure(grpc_code(status), message)


def rpc(*, authenticated: bool = True):
    """One RPC as Django serves one request: stale database connections recycled around it, the
    caller's token checked first (unless a probe), every error turned into a gRPC status."""

    def decorate(method):
        @wraps(method)
        def handler(self, request, context):
            close_old_connections()
            try:
                user = authenticate(context.invocation_metadata()) if authenticated else None
                return method(self, request, context, user)
            except Exception as exc:  # noqa: BLE001 — every error is an answer, never a dropped stream
                failure = _failure(exc, getattr(request, "model_name", "") or getattr(request, "name", ""))
                if isinstance(exc, Throttled):
                    context.set_trailing_metadata((("retry-after", str(retry_after(exc))),))
                context.abort(failure.code, failure.message)
            finally:
                close_old_connections()

        return handler

    return decorate


def authenticate(metadata):
    """The user of the REST token in the call's `authorization` metadata, with a role that may predict."""
    header = next((value for key, value in metadata or () if key == "authorization"), None)
    raw = split_authorization(header) if header else None
    if raw is None:
        raise exceptions.NotAuthenticated(
            "Authentication credentials were not provided: send the metadata 'authorization: Bearer <token>'."
        )
    user, _ = verify_token(raw)
    if not may_predict(user):
        raise exceptions.PermissionDenied(PREDICT_DENIED)
    return user


def retry_after(throttled: Throttled) -> int:
    """Whole seconds until the client's rate window ends, as the HTTP Retry-After says."""
    return max(1, round(throttled.wait))


def parameters_of(parameters, where: str) -> dict:
    """A protobuf map<string, InferParameter> as the JSON object the HTTP body would carry."""
    values = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is None:
            raise InputError(f"{where}.{key}", "the parameter has no value")
        values[key] = getattr(parameter, choice)
    return values


def set_parameters(target, values: dict) -> None:
    """The answer's parameters into a map<string, InferParameter>; a list or object (a classifier's
    `classes`) as its JSON text, since InferParameter holds scalars only."""
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int):
            target[key].int64_param = value
        elif isinstance(value, float):
            target[key].double_param = value
        elif isinstance(value, str):
            target[key].string_param = value
        else:
            target[key].string_param = json.dumps(value, separators=(",", ":"))


def _typed_contents(tensor, count: int, where: str) -> list:
    field = CONTENTS_FIELDS.get(tensor.datatype)
    if field is None:
        detail = (
            "it goes in raw_input_contents" if tensor.datatype == "FP16" else f"unknown datatype {tensor.datatype!r}"
        )
        raise InputError(f"{where}.datatype", detail)
    for other, _values in tensor.contents.ListFields():
        if other.name != field:
            raise InputError(
                f"{where}.contents.{other.name}", f"a {tensor.datatype} input's values go in contents.{field}"
            )
    values = list(getattr(tensor.contents, field))
    if len(values) != count:
        raise InputError(
            f"{where}.contents.{field}", f"shape {list(tensor.shape)} needs {count} values, got {len(values)}"
        )
    if tensor.datatype == "BYTES":
        try:
            return [value.decode("utf-8") for value in values]
        except UnicodeDecodeError:
            raise InputError(f"{where}.contents.bytes_contents", "an element is not UTF-8 text") from None
    return values


def request_body(request: pb.ModelInferRequest) -> dict:
    """The V2 JSON body an HTTP client would have sent for this request, so routing, input checks
    and the prediction log see one shape whatever the transport."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InputError(
            "raw_input_contents",
            f"{len(raw)} raw tensors for {len(request.inputs)} inputs: send one "
            "per input, in input order (or every input's values in contents)",
        )
    inputs = []
    for i, tensor in enumerate(request.inputs):
        where = f"inputs[{i}] ({tensor.name})" if tensor.name else f"inputs[{i}]"
        parameters = parameters_of(tensor.parameters, f"{where}.parameters")
        refuse_shared_memory(parameters, where)
        shape = list(tensor.shape)
        if any(d < 0 for d in shape):
            raise InputError(f"{where}.shape", "expected non-negative integers")
        count = math.prod(shape)
        if raw:
            if tensor.HasField("contents"):
                raise InputError(
                    f"{where}.contents", "send the values either in contents or in raw_input_contents, not both"
                )
            data = decode_tensor(
                tensor.datatype, raw[i], count, where, size_field=f"raw_input_contents[{i}] ({tensor.name})"
            )
        else:
            data = _typed_contents(tensor, count, where)
        inputs.append(
            {"name": tensor.name, "datatype": tensor.datatype, "shape": shape, "data": data, "parameters": parameters}
        )
    body: dict = {"inputs": inputs}
    if request.id:
        body["id"] = request.id
    parameters = parameters_of(request.parameters, "parameters")
    if parameters:
        body["parameters"] = parameters
    if request.outputs:
        body["outputs"] = []
        for j, output in enumerate(request.outputs):
            requested = {"name": output.name}
            output_parameters = parameters_of(output.parameters, f"outputs[{j}] ({output.name}).parameters")
            if output_parameters:
                requested["parameters"] = output_parameters
            body["outputs"].append(requested)
    return body


def infer_response(body: dict) -> pb.ModelInferResponse:
    """The V2 answer (protocol.response_body) as a ModelInferResponse, every output's values in
    raw_output_contents (as Triton answers, and what tritonclient reads first)."""
    response = pb.ModelInferResponse(model_name=body["model_name"], model_version=body["model_version"], id=body["id"])
    set_parameters(response.parameters, body.get("parameters", {}))
    for output in body["outputs"]:
        tensor = response.outputs.add(name=output["name"], datatype=output["datatype"], shape=output["shape"])
        set_parameters(tensor.parameters, output.get("parameters", {}))
        response.raw_output_contents.append(encode_tensor(output["datatype"], output["data"]))
    return response


def _tensor_metadata(tensors: list[dict]) -> list:
    return [
        pb.ModelMetadataResponse.TensorMetadata(name=t["name"], datatype=t["datatype"], shape=t["shape"])
        for t in tensors
    ]


class InferenceService(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Health, metadata and inference; the rest of the service (model repository, shared memory,
    statistics, trace and log settings) answers UNIMPLEMENTED, as the base class does."""

    def __init__(self, inference_threads: int | None = None):
        # The Batcher lives on an event loop; here nothing else runs on it.
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="grpc-batcher", daemon=True)
        self._loop_thread.start()
        self._batcher = Batcher(threads=inference_threads)

    def close(self) -> None:
        """After the server stopped: no job is left waiting."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(5)

    @rpc(authenticated=False)
    def ServerLive(self, request, context, user):
        return pb.ServerLiveResponse(live=True)

    @rpc(authenticated=False)
    def ServerReady(self, request, context, user):
        return pb.ServerReadyResponse(ready=server_ready())

    @rpc()
    def ServerMetadata(self, request, context, user):
        return pb.ServerMetadataResponse(**server_metadata())

    @rpc()
    def ModelReady(self, request, context, user):
        return pb.ModelReadyResponse(ready=model_ready(request.name, request.version or None))

    @rpc()
    def ModelMetadata(self, request, context, user):
        metadata = model_metadata(request.name, request.version or None)
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=_tensor_metadata(metadata["inputs"]),
            outputs=_tensor_metadata(metadata["outputs"]),
        )

    @rpc()
    def ModelInfer(self, request, context, user):
        started = time.perf_counter()
        name = request.model_name
        body = request_body(request)
        routing_header = next((v for k, v in context.invocation_metadata() or () if k == ROUTING_KEY_METADATA), None)
        options = request_options(V2, body, routing_header)
        # Built here if need be (database, model loading), as the fast path builds it off its loop.
        table = serving_state.table(name)
        # The request's own bytes identify it in the log (inputs_hash), as the HTTP body does there.
        raw = request.SerializeToString(deterministic=True)
        job = InferenceJob(
            table=table,
            body=body,
            raw=raw,
            protocol=V2,
            routing_key=options.routing_key,
            started=started,
            ident=user.pk,
            version=request.model_version or None,
        )
        result = asyncio.run_coroutine_threadsafe(self._batcher.submit(job), self._loop).result()
        return infer_response(response_body(V2, name, result, options))


def build_server(*, threads: int, max_message_bytes: int, inference_threads: int | None = None):
    """A grpc.Server with the inference service added (not started, no port yet) and the service."""
    limit = int(max_message_bytes)
    server = grpc.server(
        ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            # A port already taken is an error, not a second server sharing it unseen.
            ("grpc.so_reuseport", 0),
        ],
    )
    service = InferenceService(inference_threads)
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(service, server)
    return server, service
