from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.utils import timezone

from apps.core.models import TimeStampedModel

from .choices import AlertEventKind, AlertKind, AlertState, DeliveryStatus

# Webhooks POST JSON over the network: plain http(s) only, never file:, ftp: or the like.
webhook_url_validator = URLValidator(schemes=["http", "https"])


class AlertRule(TimeStampedModel):
    """One condition on one deployment, checked every minute over the last `window_minutes` of its
    rollups. A breach must last `duration_minutes` (pending) before the rule fires; state and
    pending_since only change in apps.alerts.services."""

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    threshold = models.FloatField(help_text="Fires above this value (no_traffic: at or below it).")
    duration_minutes = models.PositiveIntegerField(
        default=5,
        validators=[MaxValueValidator(24 * 60)],
        help_text="How long the breach must last before the rule fires (Prometheus' `for`); 0 fires at once.",
    )
    window_minutes = models.PositiveIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 60)],
        help_text="The stretch of recent traffic each check looks at.",
    )
    enabled = models.BooleanField(default=True)
    state = models.CharField(max_length=10, choices=AlertState.choices, default=AlertState.OK, editable=False)
    pending_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_value = models.FloatField(null=True, blank=True, editable=False)
    last_evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )

    class Meta:
        ordering = ["deployment__name", "name"]
        constraints = [models.UniqueConstraint(fields=["deployment", "name"], name="alert_rule_name_per_deployment")]

    def __str__(self):
        return f"{self.name} on {self.deployment.name}"


class Webhook(TimeStampedModel):
    """Where alert events are POSTed. No rule and no deployment chosen: every event goes there."""

    name = models.CharField(max_length=100, unique=True)
    url = models.CharField(max_length=500, validators=[webhook_url_validator], help_text="http:// or https:// only.")
    enabled = models.BooleanField(default=True)
    rules = models.ManyToManyField(
        AlertRule, blank=True, related_name="webhooks", help_text="Only these rules' events (none chosen: any rule)."
    )
    deployments = models.ManyToManyField(
        "deployments.Deployment",
        blank=True,
        related_name="+",
        help_text="Only these deployments' events (none chosen: any deployment).",
    )
    max_attempts = models.PositiveSmallIntegerField(default=5, validators=[MinValueValidator(1), MaxValueValidator(20)])
    retry_backoff_seconds = models.FloatField(
        default=30.0,
        validators=[MinValueValidator(0.1), MaxValueValidator(3600)],
        help_text="Wait before the first retry; each next one waits twice as long.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class AlertEvent(models.Model):
    """A rule started firing or resolved: what it measured then, against which threshold."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=AlertEventKind.choices)
    value = models.FloatField(null=True, blank=True, help_text="The measured value (none: no data in the window).")
    threshold = models.FloatField()
    started_at = models.DateTimeField(help_text="When the firing began (for a resolved event too).")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    message = models.TextField(blank=True)
    retrain_run = models.ForeignKey(
        "training.TrainingRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The retrain this firing started (delivery policy).",
    )
    retrain_note = models.TextField(blank=True, help_text="Why a retrain was or was not started.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.rule} {self.kind} at {self.created_at:%Y-%m-%d %H:%M}"


class AlertDelivery(models.Model):
    """One event sent to one webhook: every attempt's outcome stays visible here."""

    event = models.ForeignKey(AlertEvent, on_delete=models.CASCADE, related_name="deliveries")
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    errors = models.JSONField(default=list, blank=True, help_text="[{at, attempt, error}] of each failed attempt")
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "alert deliveries"
        constraints = [models.UniqueConstraint(fields=["event", "webhook"], name="one_delivery_per_event_and_webhook")]

    def __str__(self):
        return f"{self.event} → {self.webhook} ({self.status})"
