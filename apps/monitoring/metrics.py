"""Prometheus exposition of the serving metrics, gathered at scrape time.

Counters (requests and latency sums per deployment, version, status) come from Redis hashes the
prediction path increments in the same round trip as its log line, so every web process counts
into one place. Window figures (latency quantiles and error rate over 5 minutes; accuracy, log loss,
RMSE and feature PSI over the last hour), traffic weights and rollout stages come from PostgreSQL.
"""
from __future__ import annotations

from datetime import timedelta

import redis
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from .redis_client import get_redis
from .services.logbuffer import COUNT_KEY, COUNTER_SEPARATOR, LATENCY_SUM_KEY, PENDING_KEY, prediction_log_writers

LATENCY_WINDOW = timedelta(minutes=5)
QUALITY_WINDOW = timedelta(hours=1)


def _split(field: bytes) -> tuple[str, str, str, str]:
    deployment, version, status, shadow = field.decode().split(COUNTER_SEPARATOR)
    return deployment, version, status, "true" if shadow == "1" else "false"


class PortalCollector:
    def collect(self):
        yield from self._counters()
        yield from self._batches()
        yield from self._windows()

    def _batches(self):
        from apps.deployments.serving.batchstats import read_histogram

        histogram = read_histogram()
        if histogram is None:
            return
        buckets, total, _ = histogram
        family = HistogramMetricFamily("mlops_prediction_batch_requests",
                                       "Requests served together in one model call batch, across web processes.")
        family.add_metric([], buckets, float(total))
        yield family

    def _counters(self):
        labels = ["deployment", "version", "status", "shadow"]
        requests = CounterMetricFamily("mlops_predictions", "Prediction answers served, per version and outcome.", labels=labels)
        latency = CounterMetricFamily("mlops_serving_time_ms", "Total serving latency in milliseconds (divide by mlops_predictions_total for the mean).", labels=labels)
        pending = GaugeMetricFamily("mlops_prediction_log_buffer_pending",
                                    "Prediction logs answered but not yet stored, over every live web process.")
        dropped = CounterMetricFamily("mlops_prediction_log_dropped",
                                      "Prediction logs dropped past PREDICTION_LOG_BUFFER_MAX, over every live web process.")
        try:
            client = get_redis()
            for field, value in sorted(client.hgetall(COUNT_KEY).items()):
                requests.add_metric(list(_split(field)), float(value))
            for field, value in sorted(client.hgetall(LATENCY_SUM_KEY).items()):
                latency.add_metric(list(_split(field)), float(value))
            writers = prediction_log_writers().values()
            pending.add_metric([], float(client.llen(PENDING_KEY) + sum(int(w.get("p", 0)) for w in writers)))
            dropped.add_metric([], float(sum(int(w.get("d", 0)) for w in writers)))
        except redis.RedisError:
            pass
        yield requests
        yield latency
        yield pending
        yield dropped

    def _windows(self):
        from apps.deployments.models import Deployment, DeploymentVersion, Rollout
        from apps.deployments.choices import OPEN_ROLLOUT_STATUSES

        from .selectors import feature_drift, version_windows

        now = timezone.now()
        quantiles = GaugeMetricFamily("mlops_prediction_latency_ms", "Serving latency quantiles over the last 5 minutes.",
                                      labels=["deployment", "version", "quantile"])
        error_rate = GaugeMetricFamily("mlops_prediction_error_rate", "Share of requests the model failed on, last 5 minutes.",
                                       labels=["deployment", "version"])
        accuracy = GaugeMetricFamily("mlops_model_accuracy", "Accuracy from feedback on the last hour's answers.",
                                     labels=["deployment", "version"])
        log_loss = GaugeMetricFamily("mlops_model_log_loss", "Mean log loss of the class probabilities, from feedback "
                                     "on the last hour's answers.", labels=["deployment", "version"])
        rmse = GaugeMetricFamily("mlops_model_rmse", "RMSE from feedback on the last hour's answers.", labels=["deployment", "version"])
        weight = GaugeMetricFamily("mlops_deployment_traffic_percent", "Share of live traffic per version.",
                                   labels=["deployment", "version", "role", "shadow"])
        stage = GaugeMetricFamily("mlops_rollout_challenger_percent", "Challenger's traffic in the open rollout.",
                                  labels=["deployment", "status", "challenger"])
        drift = GaugeMetricFamily("mlops_feature_psi", "Population stability index of a served feature against the "
                                  "training data, last hour.", labels=["deployment", "version", "feature"])
        rows = DeploymentVersion.objects.select_related("deployment", "model_version", "model_version__dataset_version")
        versions_by_deployment: dict[int, list] = {}
        for row in rows:
            weight.add_metric([row.deployment.name, str(row.model_version.version), row.role, str(row.shadow).lower()], row.weight)
            versions_by_deployment.setdefault(row.deployment_id, []).append(row)
        for deployment in Deployment.objects.all():
            labels = {r.model_version_id: str(r.model_version.version) for r in versions_by_deployment.get(deployment.pk, [])}
            recent = version_windows(deployment=deployment, since=now - LATENCY_WINDOW)
            for version_id, window in recent.items():
                version = labels.get(version_id, str(version_id))
                for q, value in (("0.5", window.p50_ms), ("0.95", window.p95_ms), ("0.99", window.p99_ms)):
                    if value is not None:
                        quantiles.add_metric([deployment.name, version, q], value)
                if window.error_rate is not None:
                    error_rate.add_metric([deployment.name, version], window.error_rate)
            hour = version_windows(deployment=deployment, since=now - QUALITY_WINDOW)
            for version_id, window in hour.items():
                version = labels.get(version_id, str(version_id))
                if window.accuracy is not None:
                    accuracy.add_metric([deployment.name, version], window.accuracy)
                if window.log_loss is not None:
                    log_loss.add_metric([deployment.name, version], window.log_loss)
                if window.rmse is not None:
                    rmse.add_metric([deployment.name, version], window.rmse)
            for row in versions_by_deployment.get(deployment.pk, []):
                if not (row.weight > 0 or row.shadow):
                    continue
                for feature, result in feature_drift(deployment=deployment, model_version=row.model_version,
                                                     since=now - QUALITY_WINDOW).items():
                    if result["psi"] is not None:
                        drift.add_metric([deployment.name, str(row.model_version.version), feature], result["psi"])
        for rollout in Rollout.objects.filter(status__in=OPEN_ROLLOUT_STATUSES).select_related("deployment", "challenger"):
            stage.add_metric([rollout.deployment.name, rollout.status, str(rollout.challenger.version)], rollout.current_percent)
        yield from (quantiles, error_rate, accuracy, log_loss, rmse, weight, stage, drift)
