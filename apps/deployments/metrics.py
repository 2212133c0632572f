"""Prometheus exposition of the serving metrics, gathered at scrape time (names and labels: README,
"Monitoring").

Conventions: base units (seconds), `_total` counters, ratios 0–1, and label sets bounded by the
deployments and versions (never a request id). Counters of answers come from Redis hashes every web
process's log writer adds to; latency is a histogram built from the lifetime rollup rows' fixed
bins (apps.monitoring.histogram), so a server scraping several portal hosts can sum the buckets and
compute any quantile. Window figures (error ratio over 5 minutes; accuracy, log loss, RMSE, drift
over the last hour) are gauges read from the rollups: a scrape costs the same at any traffic.
"""

from __future__ import annotations

from datetime import timedelta

import redis
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from apps.core.redis_client import get_redis
from apps.monitoring.histogram import prometheus_buckets
from apps.monitoring.models import PredictionRollup, RollupBin
from apps.monitoring.rollups import ALL_TIME, LATENCY, minute_of
from apps.monitoring.selectors import deployment_drift, version_windows
from apps.monitoring.services.logbuffer import COUNT_KEY, COUNTER_SEPARATOR, PENDING_KEY, prediction_log_writers

from .choices import OPEN_ROLLOUT_STATUSES
from .models import Deployment, DeploymentVersion, Rollout
from .serving.batchstats import read_histogram

LATENCY_WINDOW = timedelta(minutes=5)
QUALITY_WINDOW = timedelta(hours=1)


def _split(field: bytes) -> tuple[str, str, str, str]:
    deployment, version, status, shadow = field.decode().split(COUNTER_SEPARATOR)
    return deployment, version, status, "true" if shadow == "1" else "false"


class PortalCollector:
    def collect(self):
        yield from self._counters()
        yield from self._batches()
        yield from self._latency()
        yield from self._windows()

    def _batches(self):
        histogram = read_histogram()
        if histogram is None:
            return
        buckets, total, _ = histogram
        family = HistogramMetricFamily(
            "mlops_prediction_batch_requests", "Requests served together in one model call batch, across web processes."
        )
        family.add_metric([], buckets, float(total))
        yield family

    def _counters(self):
        labels = ["deployment", "version", "status", "shadow"]
        requests = CounterMetricFamily(
            "mlops_predictions", "Prediction answers served, per version and outcome.", labels=labels
        )
        pending = GaugeMetricFamily(
            "mlops_prediction_log_buffer_pending",
            "Prediction logs answered but not yet stored, over every live web process.",
        )
        dropped = CounterMetricFamily(
            "mlops_prediction_log_dropped",
            "Prediction logs dropped past PREDICTION_LOG_BUFFER_MAX, over every live web process.",
        )
        try:
            client = get_redis()
            for field, value in sorted(client.hgetall(COUNT_KEY).items()):
                requests.add_metric(list(_split(field)), float(value))
            writers = prediction_log_writers().values()
            pending.add_metric([], float(client.llen(PENDING_KEY) + sum(int(w.get("p", 0)) for w in writers)))
            dropped.add_metric([], float(sum(int(w.get("d", 0)) for w in writers)))
        except redis.RedisError:
            pass
        yield requests
        yield pending
        yield dropped

    def _latency(self):
        family = HistogramMetricFamily(
            "mlops_prediction_latency_seconds",
            "Serving latency of answered (OK) requests, from the stored prediction logs.",
            labels=["deployment", "version"],
        )
        labels = {}
        for deployment, version, version_id, deployment_id, latency_sum in (
            PredictionRollup.objects.filter(minute=ALL_TIME)
            .values_list(
                "deployment__name", "model_version__version", "model_version_id", "deployment_id", "latency_ms_sum"
            )
            .order_by("deployment__name", "model_version__version")
        ):
            labels[(deployment_id, version_id)] = ([deployment, str(version)], latency_sum)
        bins: dict[tuple, dict] = {}
        for deployment_id, version_id, k, count in RollupBin.objects.filter(minute=ALL_TIME, kind=LATENCY).values_list(
            "deployment_id", "model_version_id", "bin", "count"
        ):
            bins.setdefault((deployment_id, version_id), {})[k] = count
        for key, (label_values, latency_sum) in labels.items():
            family.add_metric(label_values, prometheus_buckets(bins.get(key, {})), latency_sum / 1000.0)
        yield family

    def _windows(self):
        # Whole minutes: the windows then read rollups only, never the raw rows of a minute's part.
        now = minute_of(timezone.now())
        error_ratio = GaugeMetricFamily(
            "mlops_prediction_error_ratio",
            "Share (0-1) of requests the model failed on, last 5 minutes.",
            labels=["deployment", "version"],
        )
        accuracy = GaugeMetricFamily(
            "mlops_model_accuracy_ratio",
            "Accuracy (0-1) from feedback on the last hour's answers.",
            labels=["deployment", "version"],
        )
        log_loss = GaugeMetricFamily(
            "mlops_model_log_loss",
            "Mean log loss of the class probabilities, from feedback on the last hour's answers.",
            labels=["deployment", "version"],
        )
        rmse = GaugeMetricFamily(
            "mlops_model_rmse",
            "RMSE (target units) from feedback on the last hour's answers.",
            labels=["deployment", "version"],
        )
        weight = GaugeMetricFamily(
            "mlops_deployment_traffic_ratio",
            "Share (0-1) of live traffic per version.",
            labels=["deployment", "version", "role", "shadow"],
        )
        stage = GaugeMetricFamily(
            "mlops_rollout_challenger_traffic_ratio",
            "Challenger's share (0-1) of traffic in the open rollout.",
            labels=["deployment", "status", "challenger"],
        )
        drift = GaugeMetricFamily(
            "mlops_feature_psi",
            "Population stability index of a served feature against the "
            "training data on the profile's fixed bins, last hour (0.1 warn, 0.25 alert).",
            labels=["deployment", "version", "feature"],
        )
        rows = DeploymentVersion.objects.select_related("deployment", "model_version", "model_version__dataset_version")
        versions_by_deployment: dict[int, list] = {}
        for row in rows:
            weight.add_metric(
                [row.deployment.name, str(row.model_version.version), row.role, str(row.shadow).lower()],
                row.weight / 100.0,
            )
            versions_by_deployment.setdefault(row.deployment_id, []).append(row)
        for deployment in Deployment.objects.all():
            labels = {
                r.model_version_id: str(r.model_version.version) for r in versions_by_deployment.get(deployment.pk, [])
            }
            for version_id, window in version_windows(deployment=deployment, since=now - LATENCY_WINDOW).items():
                if window.error_rate is not None:
                    error_ratio.add_metric(
                        [deployment.name, labels.get(version_id, str(version_id))], window.error_rate
                    )
            for version_id, window in version_windows(deployment=deployment, since=now - QUALITY_WINDOW).items():
                version = labels.get(version_id, str(version_id))
                if window.accuracy is not None:
                    accuracy.add_metric([deployment.name, version], window.accuracy)
                if window.log_loss is not None:
                    log_loss.add_metric([deployment.name, version], window.log_loss)
                if window.rmse is not None:
                    rmse.add_metric([deployment.name, version], window.rmse)
            live = [
                row.model_version
                for row in versions_by_deployment.get(deployment.pk, [])
                if row.weight > 0 or row.shadow
            ]
            for version, features in deployment_drift(
                deployment=deployment, versions=live, since=now - QUALITY_WINDOW
            ).items():
                for feature, result in features.items():
                    if result["psi"] is not None:
                        drift.add_metric([deployment.name, str(version.version), feature], result["psi"])
        for rollout in Rollout.objects.filter(status__in=OPEN_ROLLOUT_STATUSES).select_related(
            "deployment", "challenger"
        ):
            stage.add_metric(
                [rollout.deployment.name, rollout.status, str(rollout.challenger.version)],
                rollout.current_percent / 100.0,
            )
        yield from (error_ratio, accuracy, log_loss, rmse, weight, stage, drift)
