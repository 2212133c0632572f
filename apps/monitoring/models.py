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
        ]

    def __str__(self):
        return f"feedback for {self.prediction.request_id}"
