"""Prediction and feedback endpoints (MLflow scoring formats) and the Open Inference Protocol V2.

Bodies are read by the serving path itself, not by DRF's parser: it keeps NaN/Infinity literals
so the rejection can name the column and row that hold them, and it answers malformed JSON with
a 400 that says where. Any portal role may predict (HasPortalRole), per-client throttled under the
"predict" scope; only ML Staff may send ground truth (IsMLStaff), since it drives automatic
promotion and rollback. In production, token-authenticated predict/infer POSTs are answered by the ASGI
fast path (apps.deployments.serving.fastpath) with the same shared steps and bodies; these views
serve session users, the test client and the OpenAPI schema.
"""
import json
import time

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.views import APIView

from apps.core.health import check_database, check_redis
from apps.core.permissions import HasPortalRole, IsMLStaff
from apps.datasets.choices import DatasetTask
from apps.monitoring.services.feedback import FeedbackConflict

from .auth import CachedApiTokenAuthentication, PredictRateThrottle
from .selectors import deployment_get, deployment_serving_versions, deployment_signature
from .serializers import (
    ErrorSerializer,
    FeedbackRequestSerializer,
    FeedbackResponseSerializer,
    PredictRequestSerializer,
    PredictResponseSerializer,
    V2ErrorSerializer,
    V2InferRequestSerializer,
    V2InferResponseSerializer,
    V2LiveSerializer,
    V2ModelMetadataSerializer,
    V2ModelReadySerializer,
    V2ReadySerializer,
)
from .serving.inputs import InputError, loads_body
from .serving.protocol import (
    MLFLOW,
    PROBABILITIES,
    V2,
    describe_error,
    error_body,
    request_options,
    response_body,
    response_headers,
    v2_datatype,
)
from .serving.state import serving_state
from .services.model_deployment_service import DeploymentNotFound, ModelUnavailable, feedback_record, predict

ROUTING_HEADER = "HTTP_X_ROUTING_KEY"
ROUTING_KEY_PARAMETER = OpenApiParameter(
    "X-Routing-Key", str, OpenApiParameter.HEADER, required=False,
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
        raise InputError("body", "the request body is larger than the server accepts; send fewer rows per request") from None


class PredictionEndpoint(APIView):
    authentication_classes = [CachedApiTokenAuthentication, SessionAuthentication]
    permission_classes = [HasPortalRole]
    throttle_classes = [PredictRateThrottle]
    throttle_scope = "predict"
    # Declared for content negotiation and the schema; the body itself is read by the serving path
    # (request.data is never touched), see the module docstring.
    parser_classes = [JSONParser]


def _error(message: str, status: int, **extra) -> HttpResponse:
    return json_response(error_body(MLFLOW, message, **extra), status=status)


def serve_prediction(request, name: str, protocol: str) -> HttpResponse:
    """Thin: read the body, call the prediction service, render in the protocol's shape. (The ASGI
    fast path in apps.deployments.serving.fastpath does the same for token-authenticated requests.)"""
    started = time.perf_counter()
    try:
        raw = _raw_body(request)
        body = loads_body(raw)
        options = request_options(protocol, body, request.META.get(ROUTING_HEADER))
        result = predict(deployment=name, body=body, raw_body=raw, protocol=protocol, routing_key=options.routing_key,
                         started=started)
    except Exception as exc:
        described = describe_error(exc, name)
        if described is None:
            raise
        status, message, extra = described
        return json_response(error_body(protocol, message, **extra), status=status)
    return json_response(response_body(protocol, name, result, options), headers=response_headers(result))


class PredictApi(PredictionEndpoint):
    @extend_schema(
        request=PredictRequestSerializer,
        responses={200: PredictResponseSerializer, 400: ErrorSerializer, 404: ErrorSerializer, 429: ErrorSerializer,
                   503: ErrorSerializer},
        parameters=[ROUTING_KEY_PARAMETER],
        summary="Predict (MLflow scoring formats: dataframe_split, dataframe_records, instances, inputs)",
        description="Send raw rows with the columns in the deployment's signature (GET /api/v1/deployments/<name>). "
                    "Models with history features need the last `history_rows` rows per entity, oldest first. "
                    'Classifiers answer class probabilities too with `"params": {"probabilities": true}`.',
    )
    def post(self, request, name):
        return serve_prediction(request, name, MLFLOW)


class FeedbackApi(PredictionEndpoint):
    # Ground truth moves the rollout gates: analysts read, staff act.
    permission_classes = [IsMLStaff]

    @extend_schema(
        request=FeedbackRequestSerializer,
        responses={200: FeedbackResponseSerializer, 400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
        summary="Ground truth for earlier predictions, by request id",
        description="ML Staff only: ground truth drives automatic promotion and rollback. A classifier's labels must "
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
        except DjangoValidationError as exc:
            field, messages = next(iter(exc.message_dict.items()))
            return _error(f"{field}: {messages[0]}", 400, field=field)
        except FeedbackConflict as exc:
            return _error(f"{exc.field}: {exc.message}", 409, field=exc.field)
        return json_response({"requests": result.requests, "answers_scored": result.answers_scored})


class V2Endpoint(PredictionEndpoint):
    """Errors in the protocol's shape: {"error": "..."}."""

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
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


def _prediction_datatype(signature: dict) -> str:
    if signature.get("task") == DatasetTask.REGRESSION:
        return "FP64"
    classes = signature.get("classes") or []
    return v2_datatype(classes) if classes else "INT64"


def _v2_outputs(signature: dict) -> list[dict]:
    """The output tensors a request may name; a classifier's "probabilities" has one column per
    class, in the order of the `classes` parameter."""
    outputs = [
        {"name": "predictions", "datatype": _prediction_datatype(signature), "shape": [-1]},
        {"name": "rows", "datatype": "BYTES", "shape": [-1]},
    ]
    if signature.get("task") == DatasetTask.CLASSIFICATION:
        classes = signature.get("classes") or []
        outputs.append({"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, len(classes) if classes else -1]})
    return outputs


class V2LiveApi(V2Endpoint):
    @extend_schema(responses={200: V2LiveSerializer}, summary="V2: server live", tags=["inference-v2"])
    def get(self, request):
        return json_response({"live": True})


class V2ReadyApi(V2Endpoint):
    @extend_schema(responses={200: V2ReadySerializer, 400: V2ReadySerializer}, summary="V2: server ready",
                   tags=["inference-v2"])
    def get(self, request):
        problems = [p for p in (check_database(), check_redis()) if p]
        return json_response({"ready": not problems}, status=200 if not problems else 400)


class V2ModelMetadataApi(V2Endpoint):
    @extend_schema(responses={200: V2ModelMetadataSerializer, 404: V2ErrorSerializer}, summary="V2: model metadata",
                   tags=["inference-v2"])
    def get(self, request, name):
        deployment = deployment_get(name=name)
        if deployment is None:
            return _v2_error(f"no model named {name!r}", 404)
        signature = deployment_signature(deployment=deployment)
        versions = [str(r.model_version.version) for r in deployment_serving_versions(deployment=deployment)]
        frameworks = sorted({r.model_version.framework for r in deployment_serving_versions(deployment=deployment)})
        return json_response({
            "name": name,
            "versions": versions,
            "platform": f"mlops-portal/{'+'.join(frameworks)}",
            "inputs": [{"name": c["name"], "datatype": c["v2_datatype"], "shape": [-1]} for c in signature.get("inputs", [])],
            "outputs": _v2_outputs(signature),
            "parameters": {
                "task": signature.get("task"),
                "history_rows": signature.get("history_rows", 1),
                "entity_column": signature.get("entity_column"),
                "time_column": signature.get("time_column"),
                "classes": signature.get("classes"),
                "model_version": signature.get("model_version"),
            },
        })


class V2ModelReadyApi(V2Endpoint):
    @extend_schema(responses={200: V2ModelReadySerializer, 400: V2ModelReadySerializer, 404: V2ErrorSerializer},
                   summary="V2: model ready (loaded in this process)", tags=["inference-v2"])
    def get(self, request, name):
        try:
            serving_state.table(name)
        except DeploymentNotFound:
            return _v2_error(f"no model named {name!r}", 404)
        except ModelUnavailable:
            return json_response({"name": name, "ready": False}, status=400)
        return json_response({"name": name, "ready": True})


class V2InferApi(V2Endpoint):
    @extend_schema(
        request=V2InferRequestSerializer,
        responses={200: V2InferResponseSerializer, 400: V2ErrorSerializer, 404: V2ErrorSerializer,
                   503: V2ErrorSerializer},
        parameters=[ROUTING_KEY_PARAMETER],
        summary="V2: infer (one input tensor per raw column, or one [rows, columns] tensor)",
        description='Outputs: "predictions", "rows" (the default pair) and, for classifiers, "probabilities" '
                    "(FP32 [rows, classes], labels in its `parameters.classes`); name them in `outputs` to choose.",
        tags=["inference-v2"],
    )
    def post(self, request, name):
        return serve_prediction(request, name, V2)
