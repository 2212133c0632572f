from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.core.models import TimeStampedModel

from .choices import OPEN_ROLLOUT_STATUSES, EventKind, RolloutStatus, VersionRole


def default_stages() -> list[dict]:
    return [
        {"percent": 10, "min_duration_s": 600, "min_predictions": 200, "min_feedback": 100},
        {"percent": 50, "min_duration_s": 600, "min_predictions": 500, "min_feedback": 200},
        {"percent": 100, "min_duration_s": 600, "min_predictions": 200, "min_feedback": 0},
    ]


def default_gates() -> dict:
    return {
        "max_error_rate": 0.02,
        "max_p99_ms": 500.0,
        "alpha": 0.05,
        "tau": 0.2,
        "min_feedback_per_arm": 50,
        "require_superiority": True,
        "max_stage_duration_s": 0,
    }


# Bounds of the per-deployment micro-batching settings (the API and admin refuse values outside them).
MAX_BATCH_SIZE_LIMIT = 1024
MAX_BATCH_WAIT_MS_LIMIT = 1000.0


def default_max_batch_size() -> int:
    """New deployments start from the process-wide setting."""
    return int(getattr(settings, "DEPLOYMENTS_BATCH_MAX_JOBS", 256))


def default_max_batch_wait_ms() -> float:
    return float(getattr(settings, "DEPLOYMENTS_BATCH_WAIT_MS", 0))


class Deployment(TimeStampedModel):
    """A named prediction endpoint (e.g. `price-direction`) serving one or more model versions.

    `generation` is the routing-table generation: every change of versions or weights increments it
    (in the same transaction) and web processes reload their table when they see a new number.

    `max_batch_size` / `max_batch_wait_ms`: micro-batching of its prediction requests in each web
    process (apps.deployments.serving.fastpath.Batcher). The batch grows with the load by itself:
    requests arriving while a model call runs go to the next one together, up to `max_batch_size`;
    a wait above 0 also holds a batch that long for more (latency traded for throughput), which is why
    the default is 0: an idle deployment answers at once. Web processes pick a change up within
    DEPLOYMENTS_GENERATION_DB_CHECK_S (or at once through deployment_batching_set).
    """

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    registered_model = models.ForeignKey(
        "registry.RegisteredModel", on_delete=models.PROTECT, related_name="deployments"
    )
    generation = models.PositiveBigIntegerField(default=1, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    max_batch_size = models.PositiveIntegerField(
        default=default_max_batch_size,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_BATCH_SIZE_LIMIT)],
        help_text=f"Most prediction requests one model call serves (1 turns batching off; at most {MAX_BATCH_SIZE_LIMIT}).",
    )
    max_batch_wait_ms = models.FloatField(
        default=default_max_batch_wait_ms,
        validators=[MinValueValidator(0.0), MaxValueValidator(MAX_BATCH_WAIT_MS_LIMIT)],
        help_text="Milliseconds a batch waits for more requests before its model call (0: none; requests that "
        f"arrive during a model call still batch). At most {MAX_BATCH_WAIT_MS_LIMIT:g}.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_batch_size__gte=1) & Q(max_batch_size__lte=MAX_BATCH_SIZE_LIMIT),
                name="deployment_max_batch_size_range",
            ),
            models.CheckConstraint(
                condition=Q(max_batch_wait_ms__gte=0) & Q(max_batch_wait_ms__lte=MAX_BATCH_WAIT_MS_LIMIT),
                name="deployment_max_batch_wait_ms_range",
            ),
        ]

    def __str__(self):
        return self.name


class DeploymentVersion(TimeStampedModel):
    """One model version's share of a deployment's traffic (percent), or a shadow copy of it."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="versions")
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    role = models.CharField(max_length=20, choices=VersionRole.choices, default=VersionRole.CHAMPION)
    weight = models.FloatField(default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(100.0)])
    shadow = models.BooleanField(
        default=False, help_text="Receives a copy of traffic; its answers are logged, not returned."
    )
    # Order of the version on the [0, 1) bucket line: champion first so a growing challenger only
    # takes keys from the champion, never reshuffles keys between other versions.
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["deployment", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "model_version"], name="deployment_version_unique"),
            models.CheckConstraint(
                condition=Q(weight__gte=0) & Q(weight__lte=100), name="deployment_version_weight_range"
            ),
        ]

    def __str__(self):
        return f"{self.deployment.name}: {self.model_version} {self.weight:g}%{' (shadow)' if self.shadow else ''}"


class Rollout(TimeStampedModel):
    """A staged move of traffic from the champion to a challenger, decided by gates.

    Status changes only through `apps.deployments.services.rollouts.rollout_transition`.
    """

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="rollouts")
    champion = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    challenger = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=RolloutStatus.choices, default=RolloutStatus.DRAFT, db_index=True)
    stage_index = models.PositiveSmallIntegerField(default=0)
    stages = models.JSONField(default=default_stages)
    gates = models.JSONField(default=default_gates)
    started_at = models.DateTimeField(null=True, blank=True)
    stage_started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    gate_status = models.JSONField(default=dict, blank=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment"],
                condition=Q(status__in=[s.value for s in OPEN_ROLLOUT_STATUSES]),
                name="one_open_rollout_per_deployment",
            ),
        ]

    def __str__(self):
        return f"{self.deployment.name}: {self.champion} → {self.challenger} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_ROLLOUT_STATUSES

    @property
    def current_stage(self) -> dict | None:
        if 0 <= self.stage_index < len(self.stages):
            return self.stages[self.stage_index]
        return None

    @property
    def current_percent(self) -> float:
        stage = self.current_stage
        return float(stage["percent"]) if stage and self.status != RolloutStatus.DRAFT else 0.0


class DeploymentEvent(models.Model):
    """Audit row for every change: who or what, when, why, and the metrics at that moment."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="events")
    rollout = models.ForeignKey(Rollout, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=40, choices=EventKind.choices)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    stage_index = models.PositiveSmallIntegerField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, help_text="Username, or the automatic process that acted.")
    reason = models.TextField(blank=True)
    traffic = models.JSONField(default=list, blank=True, help_text="Weights after the change.")
    metrics = models.JSONField(default=dict, blank=True, help_text="Metrics snapshot when it happened.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["deployment", "-created_at"], name="deployment_event_recent")]

    def __str__(self):
        return f"{self.deployment.name} {self.kind} by {self.actor_label} at {self.created_at:%Y-%m-%d %H:%M:%S}"
