from django.db import models
from django.utils import timezone

from .choices import PredictionStatus


class PredictionLog(models.Model):
    """One answer of one model version to one prediction request (shadow answers included).

    Written off the request path: each web process buffers its answers in memory and its writer
    thread inserts them in batches (apps/monitoring/services/logwriter.py); (request_id,
    model_version) makes a retried batch idempotent.
    """

    request_id = models.UUIDField(db_index=True)
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="prediction_logs")
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    shadow = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=PredictionStatus.choices, default=PredictionStatus.OK)
    error = models.TextField(blank=True)
    latency_ms = models.FloatField()
    n_rows = models.PositiveIntegerField(default=0)
    inputs_hash = models.CharField(max_length=64)
    output = models.JSONField(default=list, blank=True)
    routing_key_hash = models.CharField(max_length=32, blank=True)
    # A few served rows' raw numeric inputs, for feature drift against the training profile.
    features = models.JSONField(default=dict, blank=True)
    # Classifiers: each prediction's class probabilities, in the order of the version's
    # signature["classes"] (class indices when it names none), for log loss and calibration.
    probabilities = models.JSONField(null=True, blank=True)
    served_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-served_at"]
        constraints = [
            models.UniqueConstraint(fields=["request_id", "model_version"], name="prediction_log_once_per_version"),
        ]
        indexes = [
            models.Index(fields=["deployment", "served_at"], name="predlog_deployment_time"),
            models.Index(fields=["model_version", "served_at"], name="predlog_version_time"),
            models.Index(fields=["served_at"], name="predlog_served_at"),  # retention, the oldest row
        ]

    def __str__(self):
        return f"{self.request_id} → v{self.model_version_id} {self.status}"


class Feedback(models.Model):
    """Ground truth for one logged answer, with the per-request sums the gates and windows need.

    Classification: `n_correct` of `n`, and when the answer kept its class probabilities, the sum of
    the rows' log loss and the calibration counts per confidence bin (apps.monitoring.calibration).
    Regression: sum of squared errors and of their squares (the latter gives the variance of the
    squared error for the sequential test).
    """

    prediction = models.OneToOneField(PredictionLog, on_delete=models.CASCADE, related_name="feedback")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="feedback")
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    shadow = models.BooleanField(default=False)
    ground_truth = models.JSONField()
    n = models.PositiveIntegerField()
    n_correct = models.PositiveIntegerField(null=True, blank=True)
    sq_error_sum = models.FloatField(null=True, blank=True)
    sq_error_sq_sum = models.FloatField(null=True, blank=True)
    log_loss_sum = models.FloatField(null=True, blank=True)
    calibration = models.JSONField(null=True, blank=True)
    served_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["deployment", "served_at"], name="feedback_deployment_time"),
            models.Index(fields=["model_version", "served_at"], name="feedback_version_time"),
            models.Index(fields=["served_at"], name="feedback_served_at"),
        ]

    def __str__(self):
        return f"feedback for {self.prediction.request_id}"


class PredictionRollup(models.Model):
    """What one model version did in one deployment during one clock minute: the sums windows,
    gates, the dashboard and /metrics read instead of the raw rows, so their cost depends on the
    minutes and versions in a window, not on the requests.

    Written by the prediction-log writer right after its insert, in the same transaction, from the
    rows that insert created (apps.monitoring.services.rollups); late feedback adds to the minute
    its prediction was served in. Every write is an INSERT … ON CONFLICT DO UPDATE adding to the
    row, so any number of web processes write at once. `minute` = ALL_TIME (the epoch) is a
    version's lifetime row, the monotonic counters /metrics exports; retention never removes it.
    Latency and calibration bins are in RollupBin.

    `span` 60 is a minute's row; every increment also goes to the row of its quarter hour (`span`
    900, `minute` its first minute), so a day's window reads 96 rows per version, not 1,440.
    """

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    span = models.PositiveIntegerField(default=60)  # seconds the row covers from `minute` on
    minute = models.DateTimeField()
    requests = models.BigIntegerField(default=0)
    ok = models.BigIntegerField(default=0)
    client_errors = models.BigIntegerField(default=0)
    server_errors = models.BigIntegerField(default=0)
    latency_ms_sum = models.FloatField(default=0.0)  # over the OK answers, as the latency bins
    feedback_rows = models.BigIntegerField(default=0)
    feedback_correct = models.BigIntegerField(default=0)
    sq_error_sum = models.FloatField(default=0.0)
    sq_error_sq_sum = models.FloatField(default=0.0)
    scored_rows = models.BigIntegerField(default=0)  # labelled rows whose answer kept its probabilities
    log_loss_sum = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "model_version", "span", "minute"], name="rollup_once_per_minute"
            ),
        ]
        indexes = [
            models.Index(fields=["deployment", "span", "minute"], name="rollup_deployment_minute"),
            models.Index(fields=["minute"], name="rollup_minute"),
        ]

    def __str__(self):
        return f"{self.deployment_id} v{self.model_version_id} {self.minute:%Y-%m-%d %H:%M}"


class RollupBin(models.Model):
    """One bin of a histogram of one version's minute (same key and writers as PredictionRollup):
    `kind` "latency" (OK answers per fixed log-spaced latency bin, apps.monitoring.histogram) or
    "calibration" (labelled rows per confidence bin, with `correct` and the confidence sum in
    `value_sum`). Only non-empty bins have a row."""

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    span = models.PositiveIntegerField(default=60)
    minute = models.DateTimeField()
    kind = models.CharField(max_length=64)
    bin = models.SmallIntegerField()
    count = models.BigIntegerField(default=0)
    correct = models.BigIntegerField(default=0)
    value_sum = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "model_version", "span", "minute", "kind", "bin"],
                name="rollup_bin_once_per_minute",
            ),
        ]
        # Readers want one kind of bin (latency, calibration, a feature's) over a range of minutes.
        indexes = [
            models.Index(fields=["deployment", "kind", "span", "minute"], name="rollup_bin_kind_minute"),
            models.Index(fields=["minute"], name="rollup_bin_minute"),
        ]

    def __str__(self):
        return f"{self.kind}[{self.bin}] {self.count}"
