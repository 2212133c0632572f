from django.db import models


class AlertKind(models.TextChoices):
    """What a rule measures over its window (apps.alerts.measures says how, from the rollups)."""

    ERROR_RATE = "error_rate", "Server error rate (0–1)"
    P99_LATENCY = "p99_latency", "p99 latency (seconds, worst version)"
    ACCURACY_DROP = "accuracy_drop", "Drop below the training validation score (metric units, worst version)"
    DRIFT = "drift", "Feature drift (highest PSI)"
    NO_TRAFFIC = "no_traffic", "No traffic (requests in the window at or below the threshold)"


# Kinds whose firing can start a retrain through the deployment's delivery policy (issue 13).
RETRAIN_KINDS = (AlertKind.ACCURACY_DROP, AlertKind.DRIFT)


class AlertState(models.TextChoices):
    """Prometheus' states: a breach is pending until it has lasted the rule's duration, then firing."""

    OK = "ok", "OK"
    PENDING = "pending", "Pending"
    FIRING = "firing", "Firing"


class AlertEventKind(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (attempts used up)"
