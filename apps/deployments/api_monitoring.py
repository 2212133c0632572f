"""Monitoring API for the dashboard, and /metrics for Prometheus: a deployment's versions (this app)
joined with what they served (apps.monitoring's rollups)."""

import ipaddress

from django.conf import settings
from django.http import Http404, HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from rest_framework import exceptions, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.authentication import ApiTokenAuthentication
from apps.core.roles import has_portal_role
from apps.monitoring.selectors import (
    DEFAULT_WINDOW,
    WINDOWS,
    deployment_drift,
    deployment_series,
    drift_warnings,
    version_windows,
    window_bounds,
)

from .metrics import PortalCollector
from .selectors import deployment_get, deployment_serving_versions, deployment_version_labels

WINDOW_PARAMETER = OpenApiParameter("window", str, enum=list(WINDOWS), description=f"default {DEFAULT_WINDOW}")


class SeriesPointSerializer(serializers.Serializer):
    t = serializers.DateTimeField()
    count = serializers.IntegerField()
    errors = serializers.IntegerField()
    client_errors = serializers.IntegerField()
    error_rate = serializers.FloatField(allow_null=True)
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True)
    p99_ms = serializers.FloatField(allow_null=True)
    feedback = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)
    rmse = serializers.FloatField(allow_null=True)


class SeriesVersionSerializer(serializers.Serializer):
    model_version_id = serializers.IntegerField()
    version = serializers.CharField()
    role = serializers.CharField()
    weight = serializers.FloatField()
    shadow = serializers.BooleanField()
    task = serializers.CharField(allow_null=True)
    points = SeriesPointSerializer(many=True)


class SeriesSerializer(serializers.Serializer):
    deployment = serializers.CharField()
    window = serializers.CharField()
    bucket_seconds = serializers.IntegerField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    versions = SeriesVersionSerializer(many=True)


class CalibrationBinSerializer(serializers.Serializer):
    lower = serializers.FloatField(help_text="Confidence bins are [lower, upper), tenths; 1.0 falls in the last.")
    upper = serializers.FloatField()
    count = serializers.IntegerField(help_text="Labelled rows whose predicted class had a confidence in the bin.")
    mean_confidence = serializers.FloatField(help_text="Mean probability the model gave its predicted class.")
    accuracy = serializers.FloatField(help_text="Share of those rows whose predicted class was right.")


class WindowVersionSerializer(serializers.Serializer):
    model_version_id = serializers.IntegerField()
    version = serializers.CharField()
    role = serializers.CharField()
    weight = serializers.FloatField()
    requests = serializers.IntegerField()
    ok = serializers.IntegerField()
    client_errors = serializers.IntegerField()
    server_errors = serializers.IntegerField()
    error_rate = serializers.FloatField(allow_null=True)
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True)
    p99_ms = serializers.FloatField(allow_null=True)
    feedback_rows = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)
    rmse = serializers.FloatField(allow_null=True)
    log_loss = serializers.FloatField(
        allow_null=True, help_text="Classifiers: mean −ln p(true class) over labelled rows logged with probabilities."
    )
    calibration = CalibrationBinSerializer(
        many=True,
        allow_null=True,
        help_text="Classifiers: reliability table of the predicted class's confidence (non-empty bins only).",
    )
    drift = serializers.DictField(
        help_text="{feature: {psi, js, served_values, level}} against the training profile's "
        "fixed bins; level ok | warn (PSI >= 0.1) | alert (PSI >= 0.25) | null (too few values)"
    )
    drift_warnings = serializers.ListField(
        child=serializers.DictField(),
        help_text="features at warn or alert, worst first: [{feature, psi, js, served_values, level}]",
    )


class SummarySerializer(serializers.Serializer):
    deployment = serializers.CharField()
    window = serializers.CharField()
    versions = WindowVersionSerializer(many=True)


def _window(request) -> str:
    window = request.query_params.get("window", DEFAULT_WINDOW)
    if window not in WINDOWS:
        raise ValidationError({"window": f"unknown window {window!r}; use one of {', '.join(WINDOWS)}"})
    return window


def _deployment(name):
    deployment = deployment_get(name=name)
    if deployment is None:
        raise Http404(f"No deployment named {name!r}.")
    return deployment


class DeploymentSeriesApi(APIView):
    @extend_schema(
        parameters=[WINDOW_PARAMETER],
        responses=SeriesSerializer,
        summary="Time buckets per version: count, error rate, p50/p95/p99, accuracy or RMSE",
    )
    def get(self, request, name):
        deployment = _deployment(name)
        return Response(
            deployment_series(
                deployment=deployment, labels=deployment_version_labels(deployment=deployment), window=_window(request)
            )
        )


class DeploymentSummaryApi(APIView):
    @extend_schema(
        parameters=[WINDOW_PARAMETER],
        responses=SummarySerializer,
        summary="One window per version: accuracy or RMSE, log loss and calibration, feature drift (PSI)",
    )
    def get(self, request, name):
        deployment = _deployment(name)
        window = _window(request)
        start, end, _ = window_bounds(window, now=timezone.now())
        windows = version_windows(deployment=deployment, since=start, until=end)
        rows = {r.model_version_id: r for r in deployment_serving_versions(deployment=deployment)}
        versions = []
        for row in rows.values():
            windows.setdefault(row.model_version_id, None)
        from apps.registry.models import ModelVersion

        models = ModelVersion.objects.select_related("dataset_version").in_bulk(list(windows))
        drift = deployment_drift(deployment=deployment, versions=list(models.values()), since=start, until=end)
        for version_id, stats in windows.items():
            row = rows.get(version_id)
            data = (
                stats.as_dict()
                if stats is not None
                else {
                    "version_id": version_id,
                    "requests": 0,
                    "ok": 0,
                    "client_errors": 0,
                    "server_errors": 0,
                    "error_rate": None,
                    "p50_ms": None,
                    "p95_ms": None,
                    "p99_ms": None,
                    "feedback_rows": 0,
                    "accuracy": None,
                    "rmse": None,
                    "log_loss": None,
                    "calibration": None,
                }
            )
            data.pop("version_id")
            versions.append(
                {
                    "model_version_id": version_id,
                    "version": str(models[version_id].version) if version_id in models else str(version_id),
                    "role": row.role if row else "retired",
                    "weight": row.weight if row else 0.0,
                    **data,
                    "drift": drift.get(models.get(version_id), {}),
                    "drift_warnings": drift_warnings(drift.get(models.get(version_id), {})),
                }
            )
        versions.sort(key=lambda v: (-v["weight"], v["model_version_id"]))
        return Response({"deployment": deployment.name, "window": window, "versions": versions})


def _client_ip_allowed(request) -> bool:
    allowed = getattr(settings, "METRICS_ALLOWED_IPS", [])
    if not allowed:
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    for entry in allowed:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _token_allowed(request) -> bool:
    try:
        result = ApiTokenAuthentication().authenticate(request)
    except exceptions.AuthenticationFailed:
        return False
    return result is not None and has_portal_role(result[0])


def metrics_view(request):
    """Prometheus scrape endpoint. Allowed for a Bearer API token of a user with a portal role (or
    a logged-in portal user), or from an address in settings.METRICS_ALLOWED_IPS (addresses or CIDR
    networks; empty by default)."""
    if request.method != "GET":
        return HttpResponse("Method not allowed.\n", status=405, content_type="text/plain")
    session_user = getattr(request, "user", None)
    if not (_client_ip_allowed(request) or has_portal_role(session_user) or _token_allowed(request)):
        response = HttpResponse(
            "Authentication required: Bearer API token of a portal user, or an allowed address.\n",
            status=401,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = "Bearer"
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PortalCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
