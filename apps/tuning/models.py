from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.core.models import TimeStampedModel

from .choices import Device, Direction, PrunerKind, Strategy, StudyStatus, TrialStatus


class TuningStudy(TimeStampedModel):
    """A hyperparameter search: which model to tune, over which space, how, and within which budget.

    `search_space` is a list of parameter specs (see apps.tuning.space); everything the strategies
    need to continue the study lives in this row and its trials, never in a process's memory.
    """

    name = models.CharField(max_length=120, unique=True)
    experiment = models.ForeignKey("training.Experiment", on_delete=models.PROTECT, related_name="tuning_studies")
    framework = models.CharField(max_length=20)
    model_type = models.CharField(max_length=50)
    search_space = models.JSONField(default=list)
    fixed_params = models.JSONField(default=dict, blank=True, help_text="Hyperparameters every trial uses as given.")
    strategy = models.CharField(max_length=20, choices=Strategy.choices, default=Strategy.RANDOM)
    strategy_options = models.JSONField(default=dict, blank=True)
    objective_metric = models.CharField(max_length=50)
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.MAXIMIZE)
    max_trials = models.PositiveIntegerField(default=20)
    max_wall_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="Time budget; empty means none.")
    parallelism = models.PositiveSmallIntegerField(default=1)
    pruner = models.CharField(max_length=30, choices=PrunerKind.choices, default=PrunerKind.NONE)
    pruner_options = models.JSONField(default=dict, blank=True)
    device = models.CharField(max_length=3, choices=Device.choices, default=Device.CPU)
    seed = models.IntegerField(default=0)
    status = models.CharField(max_length=20, choices=StudyStatus.choices, default=StudyStatus.DRAFT, db_index=True)
    # Wall-time budget counts only time spent RUNNING: paused time is banked in running_seconds.
    running_seconds = models.FloatField(default=0.0)
    running_since = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The best trial's model, registered when the study ends.
    model_version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="tuning_studies"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "tuning studies"
        constraints = [
            models.CheckConstraint(condition=models.Q(parallelism__gte=1), name="tuning_study_parallelism_positive"),
            models.CheckConstraint(condition=models.Q(max_trials__gte=1), name="tuning_study_max_trials_positive"),
        ]

    def __str__(self):
        return self.name

    def elapsed_seconds(self, now=None) -> float:
        running = 0.0
        if self.running_since is not None:
            running = ((now or timezone.now()) - self.running_since).total_seconds()
        return self.running_seconds + running


class Trial(TimeStampedModel):
    """One evaluation of the objective: a parameter set, trained as one TrainingRun."""

    study = models.ForeignKey(TuningStudy, on_delete=models.CASCADE, related_name="trials")
    number = models.PositiveIntegerField()
    params = models.JSONField(default=dict, help_text="The searched parameters (fixed_params excluded).")
    # TrainingRun.trial_id points back here; this side makes joins and admin links cheap.
    run = models.OneToOneField(
        "training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="trial"
    )
    status = models.CharField(max_length=20, choices=TrialStatus.choices, default=TrialStatus.QUEUED, db_index=True)
    # {"<epoch>": value}: JSON object keys are strings; readers convert them back to ints.
    intermediate_values = models.JSONField(default=dict, blank=True)
    value = models.FloatField(null=True, blank=True)
    prune_requested_at_epoch = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "number"]
        constraints = [models.UniqueConstraint(fields=["study", "number"], name="tuning_trial_number_unique")]

    def __str__(self):
        return f"{self.study} #{self.number}"

    def intermediate_series(self) -> dict[int, float]:
        return {int(epoch): float(value) for epoch, value in (self.intermediate_values or {}).items()}


class TuningEvent(models.Model):
    """Audit row for every status change of a study or one of its trials."""

    study = models.ForeignKey(TuningStudy, on_delete=models.CASCADE, related_name="events")
    trial = models.ForeignKey(Trial, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    reason = models.TextField(blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        subject = f"trial #{self.trial.number}" if self.trial_id else "study"
        return f"{self.study} {subject}: {self.from_status or '-'} → {self.to_status}"
