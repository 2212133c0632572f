from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.core.models import TimeStampedModel

from .choices import (
    RUN_ACTIVE,
    RUN_TERMINAL,
    Device,
    Direction,
    Framework,
    IntervalUnit,
    LogLevel,
    RunOrigin,
    RunStatus,
    ScheduleKind,
    Task,
)


class Experiment(TimeStampedModel):
    """What to learn: a dataset, how to turn it into features, which target, judged by which metric.

    The default_* fields say how "Train now", schedules and new-data retraining train it when nobody
    picks a framework by hand.
    """

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.PROTECT, related_name="experiments")
    feature_spec = models.ForeignKey(
        "datasets.FeatureSpec",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="experiments",
        help_text="Empty: the dataset's columns are used as they are.",
    )
    target = models.CharField(max_length=200, help_text="Column the model predicts (after feature engineering).")
    task = models.CharField(max_length=20, choices=Task.choices)
    primary_metric = models.CharField(max_length=50, help_text="e.g. accuracy, f1, roc_auc, rmse, mae, r2")
    metric_direction = models.CharField(max_length=10, choices=Direction.choices)
    default_framework = models.CharField(max_length=10, choices=Framework.choices, default=Framework.SKLEARN)
    default_model_type = models.CharField(max_length=50, default="linear")
    default_params = models.JSONField(default=dict, blank=True)
    default_device = models.CharField(max_length=3, choices=Device.choices, default=Device.CPU)
    seed = models.IntegerField(default=0)
    registered_model_name = models.CharField(
        max_length=120, blank=True, help_text="Registry model that successful runs register under (empty: this name)."
    )
    retrain_on_new_data = models.BooleanField(
        default=False, help_text="Train with the defaults whenever a new version of the dataset arrives."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def model_name(self) -> str:
        return self.registered_model_name or self.name


class TrainingRun(TimeStampedModel):
    """One training job. Its status only changes through services.runs.run_status_transition."""

    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="runs")
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", on_delete=models.PROTECT, related_name="training_runs"
    )
    dataset_sha256 = models.CharField(max_length=64)
    feature_spec = models.JSONField(default=dict, blank=True, help_text="The spec as it was when the run started.")
    framework = models.CharField(max_length=10, choices=Framework.choices)
    model_type = models.CharField(max_length=50)
    params = models.JSONField(default=dict, blank=True)
    device = models.CharField(max_length=3, choices=Device.choices, default=Device.CPU)
    queue = models.CharField(max_length=100)
    seed = models.IntegerField(default=0)
    origin = models.CharField(max_length=10, choices=RunOrigin.choices, default=RunOrigin.CODE)
    register_model = models.BooleanField(default=True)
    trial_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True, help_text="tuning.Trial id, if any")
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    idempotency_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    stop_requested = models.CharField(max_length=20, blank=True, help_text="Set by a cancel or prune request.")
    stop_reason = models.CharField(max_length=20, blank=True)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, db_index=True)
    worker_host = models.CharField(max_length=255, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)

    cpu_seconds = models.FloatField(null=True, blank=True, help_text="CPU time of the last attempt's process.")
    current_epoch = models.PositiveIntegerField(default=0)
    total_epochs = models.PositiveIntegerField(default=0)
    progress = models.FloatField(default=0.0, help_text="Percent done, 0-100.")
    eta_seconds = models.FloatField(null=True, blank=True)
    log_seq = models.PositiveIntegerField(default=0, help_text="Last sequence number given to a log line.")

    val_metrics = models.JSONField(default=dict, blank=True)
    test_metrics = models.JSONField(default=dict, blank=True)
    evaluation = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "Confusion matrix and ROC/PR curves (classifiers) or residual summary (regressors) on the test split; "
            "see apps.training.evaluation."
        ),
    )
    primary_metric_value = models.FloatField(null=True, blank=True)
    error_message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    code_version = models.CharField(max_length=64, blank=True)
    library_versions = models.JSONField(default=dict, blank=True)
    plugin = models.JSONField(
        default=dict, blank=True, help_text="The model type's provenance: module, package, version, code sha256."
    )

    # The committed artifact (see apps.registry.storage); empty until the run succeeds.
    artifact_uri = models.CharField(max_length=500, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    signature = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="training_run_status_hb")]

    def __str__(self):
        return f"run {self.pk} ({self.experiment.name}, {self.framework}/{self.model_type})"

    @property
    def is_active(self) -> bool:
        return self.status in RUN_ACTIVE

    @property
    def is_terminal(self) -> bool:
        return self.status in RUN_TERMINAL

    @property
    def group_name(self) -> str:
        return f"training-run-{self.pk}"

    @property
    def duration_seconds(self) -> float | None:
        if not self.started_at:
            return None
        return ((self.finished_at or timezone.now()) - self.started_at).total_seconds()


class RunEvent(models.Model):
    """Audit row written by the one service that changes a run's status."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=10, blank=True)
    to_status = models.CharField(max_length=10)
    attempt = models.PositiveSmallIntegerField(default=0)
    reason = models.TextField(blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"run {self.run_id}: {self.from_status or '-'} → {self.to_status}"


class RunLogLine(models.Model):
    """A log line with a per-run sequence number, so live viewers can resume after any `seq`."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="log_lines")
    seq = models.PositiveIntegerField()
    attempt = models.PositiveSmallIntegerField(default=0)
    level = models.CharField(max_length=10, choices=LogLevel.choices, default=LogLevel.INFO)
    message = models.TextField()
    ts = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="training_log_seq_unique")]

    def __str__(self):
        return f"{self.run_id}#{self.seq} {self.level} {self.message[:60]}"


class RunEpoch(models.Model):
    """Metrics of one epoch of one attempt (a redelivered run starts its curves again)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="epochs")
    attempt = models.PositiveSmallIntegerField(default=1)
    epoch = models.PositiveIntegerField()
    total_epochs = models.PositiveIntegerField()
    metrics = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "attempt", "epoch"]
        constraints = [
            models.UniqueConstraint(fields=["run", "attempt", "epoch"], name="training_epoch_unique"),
        ]

    def __str__(self):
        return f"run {self.run_id} epoch {self.epoch}/{self.total_epochs}"


class TrainingSchedule(TimeStampedModel):
    """ "Retrain experiment X on its dataset's newest version" on a cron or interval schedule.

    Saved through services.schedules.training_schedule_save, which keeps the django-celery-beat
    PeriodicTask (the thing beat actually reads) in step with this row.
    """

    name = models.CharField(max_length=120, unique=True)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="schedules")
    kind = models.CharField(max_length=10, choices=ScheduleKind.choices, default=ScheduleKind.CRON)
    cron = models.CharField(
        max_length=100,
        blank=True,
        help_text='Five fields: minute hour day-of-month month day-of-week, e.g. "0 6 * * 1-5".',
    )
    every = models.PositiveIntegerField(null=True, blank=True)
    unit = models.CharField(max_length=10, choices=IntervalUnit.choices, blank=True)
    framework = models.CharField(
        max_length=10, choices=Framework.choices, blank=True, help_text="Empty: experiment default."
    )
    model_type = models.CharField(max_length=50, blank=True, help_text="Empty: experiment default.")
    params = models.JSONField(default=dict, blank=True, help_text="Empty: experiment default.")
    device = models.CharField(max_length=3, choices=Device.choices, blank=True, help_text="Empty: experiment default.")
    enabled = models.BooleanField(default=True)
    force_next = models.BooleanField(
        default=False,
        help_text="Train at the next tick even if the data and settings are unchanged (cleared by that tick).",
    )
    # What the last tick did, so a skipped retrain says why instead of silently doing nothing.
    last_tick_at = models.DateTimeField(null=True, blank=True)
    last_tick_outcome = models.CharField(max_length=10, blank=True, help_text="started or skipped")
    last_tick_reason = models.TextField(blank=True)
    last_tick_run = models.ForeignKey(
        TrainingRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The run the last tick started (or, when skipped, the run whose result still stands).",
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="training_schedule",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name
