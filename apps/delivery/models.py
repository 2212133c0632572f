from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.core.models import TimeStampedModel

from .choices import EvaluationAction, EvaluationStatus, WhenRolloutOpen


class DeliveryPolicy(TimeStampedModel):
    """How new versions of a model reach one deployment without a person in the loop.

    No policy (or auto_challenge off) means nothing happens by itself: existing deployments keep
    being delivered by hand until staff turn it on.
    """

    deployment = models.OneToOneField(
        "deployments.Deployment", on_delete=models.CASCADE, related_name="delivery_policy"
    )
    registered_model = models.ForeignKey(
        "registry.RegisteredModel",
        on_delete=models.PROTECT,
        related_name="delivery_policies",
        help_text="The model whose new versions feed this deployment (the one it serves).",
    )
    auto_challenge = models.BooleanField(
        default=False, help_text="Evaluate each new version and roll out the ones that clear the margin."
    )
    metric = models.CharField(
        max_length=50,
        blank=True,
        help_text="Offline metric to compare on (empty: accuracy for classifiers, rmse for regression).",
    )
    min_improvement = models.FloatField(
        default=0.0,
        help_text="How much better than the champion the candidate must score (in the metric's units, "
        "its direction taken into account).",
    )
    min_evaluation_rows = models.PositiveIntegerField(
        default=20, help_text="Fewest labelled rows after both models' training data for a verdict."
    )
    stages = models.JSONField(null=True, blank=True, help_text="Rollout stages; empty: the deployment defaults.")
    gates = models.JSONField(null=True, blank=True, help_text="Rollout gate settings; empty: the defaults.")
    when_rollout_open = models.CharField(max_length=10, choices=WhenRolloutOpen.choices, default=WhenRolloutOpen.QUEUE)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["deployment__name"]
        verbose_name_plural = "delivery policies"

    def __str__(self):
        return f"delivery of {self.registered_model.name} to {self.deployment.name}"


class CandidateEvaluation(models.Model):
    """A new version scored beside the champion on the same labelled rows that come after both
    models' training data, before it gets any traffic. Its status only changes in services."""

    policy = models.ForeignKey(DeliveryPolicy, on_delete=models.CASCADE, related_name="evaluations")
    candidate = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="+")
    champion = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The labelled data it was scored on.",
    )
    trigger = models.CharField(max_length=200, blank=True, help_text="What asked for it.")
    status = models.CharField(
        max_length=10, choices=EvaluationStatus.choices, default=EvaluationStatus.QUEUED, db_index=True
    )
    action = models.CharField(
        max_length=20, choices=EvaluationAction.choices, default=EvaluationAction.NONE, blank=True
    )
    metric = models.CharField(max_length=50, blank=True)
    min_improvement = models.FloatField(default=0.0)
    candidate_value = models.FloatField(null=True, blank=True)
    champion_value = models.FloatField(null=True, blank=True)
    candidate_metrics = models.JSONField(default=dict, blank=True)
    champion_metrics = models.JSONField(default=dict, blank=True)
    window = models.JSONField(default=dict, blank=True, help_text="{after, start, end, rows, times}")
    reason = models.TextField(blank=True)
    log = models.JSONField(default=list, blank=True, help_text="[{ts, level, message}]")
    rollout = models.ForeignKey(
        "deployments.Rollout", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    celery_task_id = models.CharField(max_length=64, blank=True)
    # Each message sent for it (first dispatch and the reaper's re-dispatches of a lost one): the
    # reaper looks at a QUEUED evaluation again only a whole stale period after its latest message.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    dispatches = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"evaluation {self.pk}: {self.candidate} vs {self.champion or '-'} ({self.status})"

    @property
    def improvement(self) -> float | None:
        from apps.frameworks.metrics import greater_is_better

        if self.candidate_value is None or self.champion_value is None:
            return None
        delta = self.candidate_value - self.champion_value
        return delta if greater_is_better(self.metric) else -delta
