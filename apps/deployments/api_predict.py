"""Prediction and feedback endpoints (MLflow scoring formats) and the Open Inference Protocol V2.

Each deployment also answers MLflow's scoring-server paths under its own prefix: `…/invocations`
(the same as `…/predict`: JSON in MLflow's formats or text/csv), `…/ping` and `…/version`; the
MLflow-format endpoints' errors carry MLflow's `error_code` and `message` beside `detail`/`field`.

Bodies are read by the serving path itself, not by DRF's parser: it keeps NaN/Infinity literals
so the rejection can name the column and row that hold them, and it answers malformed JSON with
a 400 that says where. Any role may predict (MayPredict: staff, analysts, prediction clients), per-client throttled under the
"predict" scope; only ML Staff and Prediction Clients may send ground truth (MaySendFeedback), since it drives automatic
promotion and rollback. The V2 health probes need no token (load balancers, Kubernetes probes).
In production, token-authenticated predict/infer POSTs are answered by the ASGI
fast path (apps.deployments.serving.fastpath) with the same shared steps and bodies; these views
serve session users, the test client and the OpenAPI schema.
"""

import json
import logging
import time

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from apps.core.permissions import MayPredict, MaySendFeedback
from apps.monitoring.services.feedback import FeedbackConflict

from .auth import CachedApiTokenAuthentication, PredictRateThrottle
from .selectors import deployment_get, deployment_serving_versions
from .serializers import (
    ErrorSerializer,
    FeedbackRequestSerializer,
    FeedbackResponseSerializer,
    MlflowPingSerializer,
    MlflowVersionSerializer,
    PredictRequestSerializer,
    PredictResponseSerializer,
    V2ErrorSerializer,
    V2InferRequestSerializer,
    V2InferResponseSerializer,
    V2LiveSerializer,
    V2ModelMetadataSerializer,
    V2ModelReadySerializer,
    V2ReadySerializer,
    V2ServerMetadataSerializer,
)
from .serving.inputs import InputError, loads_body, loads_mlflow_body
from .serving.protocol import (
    MLFLOW,
    V2,
    describe_error,
    error_body,
    request_options,
    render,
    response_body,
    response_headers,
)
from .serving.state import serving_state
from .serving.v2 import (
    BINARY_CONTENT_TYPE,
    HEADER_LENGTH,
    ModelNotFound,
    VersionNotServed,
    decode_request,
    model_metadata,
    model_ready,
    server_metadata,
    server_ready,
)
from .services.model_deployment_service import feedback_record, predict

logger = logging.getLogger(__name__)

ROUTING_HEADER = "HTTP_X_ROUTING_KEY"
V2_HEADER_LENGTH = "HTTP_" + HEADER_LENGTH.upper().replace("-", "_")
ROUTING_KEY_PARAMETER = OpenApiParameter(
    "X-Routing-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Sticky assignment: requests with the same key reach the same version while weights stand.",
)


def json_response(data: dict, status: int = 200, headers: dict | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(data, separators=(",", ":")), content_type="application/json", status=status)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def _raw_body(request) -> bytes:
    try:
        return request.body
    except RequestDataTooBig:
        raise InputError(
            "body", "the request body is larger than the server accepts; send fewer rows per request"
        ) from None


class PredictionEndpoint(APIView):
    authentication_classes = [CachedApiTokenAuthentication, SessionAuthentication]
    permission_classes = [MayPredict]
    throttle_classes = [PredictRateThrottle]
    throttle_scope = "predict"
    # Declared for content negotiation and the schema; the body itself is read by the serving path
    # (request.data is never touched), see the module docstring.
    parser_classes = [JSONParser]


def _error(message: str, status: int, **extra) -> HttpResponse:
    return json_response(error_body(MLFLOW, message, status=status, **extra), status=status)


class MlflowEndpoint(PredictionEndpoint):
    """The MLflow-format endpoints: DRF's own refusals (401, 403, 405, 413, 429) in the serving path's
    error shape too, MLflow's error_code and message beside detail, as the ASGI fast path answers them."""

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        data = response.data
        extra = {}
        if isinstance(data, dict) and "detail" in data:
            message = str(data["detail"])
        elif isinstance(data, dict) and data:
            field, value = next(iter(data.items()))
            message = f"{field}: {value[0] if isinstance(value, list) and value else value}"
            extra["field"] = field
        else:
            message = str(data)
        response.data = error_body(MLFLOW, message, status=response.status_code, **extra)
        return response


class MlflowProbeEndpoint(MlflowEndpoint):
    # A probe every few seconds must not spend the client's prediction rate.
    throttle_classes = []


def serve_prediction(request, name: str, protocol: str, version: str | None = None) -> HttpResponse:
    """Thin: read the body, call the prediction service, render in the protocol's shape. (The ASGI
    fast path in apps.deployments.serving.fastpath does the same for token-authenticated requests.)
    `version`: a V2 versioned route's version, served outside the traffic split."""
    started = time.perf_counter()
    try:
        raw = _raw_body(request)
        # V2 bodies may carry binary tensors after a JSON header (serving/v2.py).
        body = (
            decode_request(raw, request.META.get(V2_HEADER_LENGTH))
            if protocol == V2
            else loads_mlflow_body(raw, request.META.get("CONTENT_TYPE"))
        )
        options = request_options(protocol, body, request.META.get(ROUTING_HEADER))
        result = predict(
            deployment=name,
            body=body,
            raw_body=raw,
            protocol=protocol,
            routing_key=options.routing_key,
            started=started,
            version=version,
        )
    except Exception as exc:
        described = describe_error(exc, name)
        if described is None:
            raise
        status, message, extra = described
        return json_response(error_body(protocol, message, status=status, **extra), status=status)
    payload, content = render(protocol, response_body(protocol, name, result, options), options)
    response = HttpResponse(payload, content_type=content.pop("Content-Type"))
    for key, value in {**content, **response_headers(result)}.items():
        response[key] = value
    return response


MLFLOW_SCORING_SCHEMA = dict(
    request={"application/json": PredictRequestSerializer, "text/csv": OpenApiTypes.STR},
    responses={
        200: PredictResponseSerializer,
        400: ErrorSerializer,
        404: ErrorSerializer,
        415: ErrorSerializer,
        429: ErrorSerializer,
        503: ErrorSerializer,
    },
    parameters=[ROUTING_KEY_PARAMETER],
    description="Send raw rows with the columns in the deployment's signature (GET /api/v1/deployments/<name>): "
    "JSON in one of MLflow's scoring formats, or `text/csv` with a header row naming the columns "
    "(as `pandas.DataFrame.to_csv()` writes it; its unnamed index column is ignored). "
    "Models with history features need the last `history_rows` rows per entity, oldest first. "
    'Classifiers answer class probabilities too with `"params": {"probabilities": true}` (JSON only); '
    "any other param is refused (INVALID_PARAMETER_VALUE). Errors carry MLflow's `error_code` and "
    "`message` beside `detail` and `field`.",
)


class PredictApi(MlflowEndpoint):
    @extend_schema(
        summary="Predict (MLflow scoring formats: dataframe_split, dataframe_records, instances, inputs; CSV)",
        **MLFLOW_SCORING_SCHEMA,
    )
    def post(self, request, name):
        return serve_prediction(request, name, MLFLOW)


class InvocationsApi(MlflowEndpoint):
    @extend_schema(
        summary="MLflow scoring server: /invocations (the same as /predict)",
        tags=["inference-mlflow"],
        **MLFLOW_SCORING_SCHEMA,
    )
    def post(self, request, name):
        return serve_prediction(request, name, MLFLOW)


class PingApi(MlflowProbeEndpoint):
    """MLflow's /ping, per deployment. Behind a token (any portal role) unlike MLflow's: it answers
    per deployment name, so an anonymous caller could list the deployments. Anonymous load-balancer
    probes use /healthz, /readyz or /v2/health/ready, which say nothing about deployments."""

    @extend_schema(
        responses={200: MlflowPingSerializer, 404: ErrorSerializer, 503: ErrorSerializer},
        tags=["inference-mlflow"],
        summary="MLflow scoring server: /ping (200 when this process can serve the deployment)",
        description="Loads the deployment's versions in this process if they are not yet; 503 when none "
        "with traffic can be loaded, or while this process switches to new routing.",
    )
    def get(self, request, name):
        try:
            table = serving_state.table(name)
        except Exception as exc:
            described = describe_error(exc, name)
            if described is None:
                raise
            status, message, extra = described
            return _error(message, status, **extra)
        unavailable = [{"version": u.label, "reason": u.reason} for u in table.unavailable.values()]
        return json_response({"deployment": name, "ready": True, "unavailable": unavailable})


class VersionApi(MlflowProbeEndpoint):
    @extend_schema(
        responses={200: MlflowVersionSerializer, 404: ErrorSerializer},
        tags=["inference-mlflow"],
        summary="MLflow scoring server: /version (the model versions served and their weights)",
    )
    def get(self, request, name):
        deployment = deployment_get(name=name)
        if deployment is None:
            return _error(f"No deployment named {name!r}.", 404)
        return json_response(
            {
                "deployment": name,
                "model_name": deployment.registered_model.name,
                "generation": deployment.generation,
                "versions": [
                    {
                        "version": str(r.model_version.version),
                        "model_version_id": r.model_version_id,
                        "role": r.role,
                        "weight": r.weight,
                        "shadow": r.shadow,
                        "framework": r.model_version.framework,
                        "model_type": r.model_version.model_type,
                    }
                    for r in deployment_serving_versions(deployment=deployment)
                ],
            }
        )


class FeedbackApi(MlflowEndpoint):
    # Ground truth moves the rollout gates: staff and the product's prediction clients send it.
    permission_classes = [MaySendFeedback]

    @extend_schema(
        request=FeedbackRequestSerializer,
        responses={200: FeedbackResponseSerializer, 400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
        summary="Ground truth for earlier predictions, by request id",
        description="ML Staff and Prediction Clients only: ground truth drives automatic promotion and rollback. A classifier's labels must "
        "be among its classes. Ground truth is recorded once per request: the same value again is a 200 "
        "that changes nothing, a different one a 409.",
    )
    def post(self, request, name):
        try:
            body = loads_body(_raw_body(request))
        except InputError as exc:
            return _error(f"{exc.field}: {exc.message}", 400, field=exc.field)
        deployment = deployment_get(name=name)
        if deployment is None:
            return _error(f"No deployment named {name!r}.", 404)
        if "feedback" in body:
            unknown = sorted(set(body) - {"feedback"})
            if unknown:
                return _error(f"{unknown[0]}: unknown field", 400, field=unknown[0])
            items = body["feedback"]
        else:
            items = [body]
        try:
            result = feedback_record(deployment=deployment, items=items, user=request.user)
        except FeedbackConflict as exc:  # a ValidationError too: first
            return _error(f"{exc.field}: {exc.message}", 409, field=exc.field)
        except DjangoValidationError as exc:
            field, messages = next(iter(exc.message_dict.items()))
            return _error(f"{field}: {messages[0]}", 400, field=field)
        return json_response({"requests": result.requests, "answers_scored": result.answers_scored})


class V2Endpoint(PredictionEndpoint):
    """Errors in the protocol's shape: {"error": "..."}, a server error too (left to Django it would
    be an HTML page, which V2 clients cannot read)."""

    def handle_exception(self, exc):
        try:
            response = super().handle_exception(exc)
        except Exception:
            logger.exception("V2 request to %s failed", self.request.path)
            return _v2_error("internal error", 500)
        data = response.data
        if isinstance(data, dict) and "detail" in data:
            message = str(data["detail"])
        elif isinstance(data, dict):
            field, value = next(iter(data.items()))
            message = f"{field}: {value[0] if isinstance(value, list) else value}"
        else:
            message = str(data)
        response.data = {"error": message}
        return response


def _v2_error(message: str, status: int) -> HttpResponse:
    return json_response({"error": message}, status=status)


class V2ProbeEndpoint(V2Endpoint):
    """Liveness and readiness for a load balancer or a Kubernetes probe: no token and no throttle.
    They tell nothing about models or data; model-level metadata and readiness stay behind auth."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []


class V2LiveApi(V2ProbeEndpoint):
    @extend_schema(
        responses={200: V2LiveSerializer}, summary="V2: server live (no token needed)", tags=["inference-v2"]
    )
    def get(self, request):
        return json_response({"live": True})


class V2ReadyApi(V2ProbeEndpoint):
    @extend_schema(
        responses={200: V2ReadySerializer, 400: V2ReadySerializer},
        summary="V2: server ready: database and Redis reachable (no token needed)",
        tags=["inference-v2"],
    )
    def get(self, request):
        ready = server_ready()
        return json_response({"ready": ready}, status=200 if ready else 400)


class V2ServerMetadataApi(V2Endpoint):
    # The path is /v2, outside the /v2/ prefix the schema's error shapes key on: declared here.
    @extend_schema(
        responses={
            200: V2ServerMetadataSerializer,
            401: V2ErrorSerializer,
            403: V2ErrorSerializer,
            429: V2ErrorSerializer,
        },
        summary="V2: server metadata (name, version, protocol extensions)",
        tags=["inference-v2"],
    )
    def get(self, request):
        return json_response(server_metadata())


def _metadata_response(name: str, version: str | None = None) -> HttpResponse:
    # The answers themselves are serving/v2.py's, shared with the gRPC server.
    try:
        return json_response(model_metadata(name, version))
    except (ModelNotFound, VersionNotServed) as exc:
        return _v2_error(str(exc), 404)


def _ready_response(name: str, version: str | None = None) -> HttpResponse:
    try:
        ready = model_ready(name, version)
    except (ModelNotFound, VersionNotServed) as exc:
        return _v2_error(str(exc), 404)
    return json_response({"name": name, "ready": ready}, status=200 if ready else 400)


class V2ModelMetadataApi(V2Endpoint):
    @extend_schema(
        responses={200: V2ModelMetadataSerializer, 404: V2ErrorSerializer},
        summary="V2: model metadata",
        tags=["inference-v2"],
    )
    def get(self, request, name):
        return _metadata_response(name)


class V2ModelVersionMetadataApi(V2Endpoint):
    @extend_schema(
        responses={200: V2ModelMetadataSerializer, 404: V2ErrorSerializer},
        summary="V2: metadata of one version the model serves",
        tags=["inference-v2"],
    )
    def get(self, request, name, version):
        return _metadata_response(name, version)


class V2ModelReadyApi(V2Endpoint):
    @extend_schema(
        responses={200: V2ModelReadySerializer, 400: V2ModelReadySerializer, 404: V2ErrorSerializer},
        summary="V2: model ready (loaded in this process)",
        tags=["inference-v2"],
    )
    def get(self, request, name):
        return _ready_response(name)


class V2ModelVersionReadyApi(V2Endpoint):
    @extend_schema(
        responses={200: V2ModelReadySerializer, 400: V2ModelReadySerializer, 404: V2ErrorSerializer},
        summary="V2: one version of the model ready (loaded in this process)",
        tags=["inference-v2"],
    )
    def get(self, request, name, version):
        return _ready_response(name, version)


INFER_SCHEMA = {
    "request": V2InferRequestSerializer,
    "responses": {
        (200, "application/json"): V2InferResponseSerializer,
        (200, BINARY_CONTENT_TYPE): OpenApiTypes.BINARY,
        400: V2ErrorSerializer,
        404: V2ErrorSerializer,
        503: V2ErrorSerializer,
    },
    "parameters": [ROUTING_KEY_PARAMETER],
    "description": 'Outputs: "predictions", "rows" (the default pair) and, for classifiers, "probabilities" '
    "(FP32 [rows, classes], labels in its `parameters.classes`); name them in `outputs` to choose. "
    "Binary tensor data extension: a body may be the JSON header followed by the tensors' raw "
    f"little-endian bytes (`{HEADER_LENGTH}` = the header's length, each such input's "
    "`parameters.binary_data_size`; BYTES elements each prefixed by a 4-byte little-endian length). "
    "Outputs asked for with `parameters.binary_data: true` (all of them: the request's "
    f"`parameters.binary_data_output: true`) come back the same way: `{BINARY_CONTENT_TYPE}`, "
    f"`{HEADER_LENGTH}`, each output's "
    "`parameters.binary_data_size`.",
    "tags": ["inference-v2"],
}


class V2InferApi(V2Endpoint):
    @extend_schema(summary="V2: infer (one input tensor per raw column, or one [rows, columns] tensor)", **INFER_SCHEMA)
    def post(self, request, name):
        return serve_prediction(request, name, V2)


class V2ModelVersionInferApi(V2Endpoint):
    @extend_schema(summary="V2: infer with one version the model serves, outside the traffic split", **INFER_SCHEMA)
    def post(self, request, name, version):
        return serve_prediction(request, name, V2, version=version)
