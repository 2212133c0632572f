from django.db import models

from apps.datasets.choices import DatasetTask
from apps.frameworks.choices import Framework  # noqa: F401  (owned by the adapters; runs store it)


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    # Stopped by a tuning pruner (stop reason "pruned"): judged unpromising, not abandoned by a person.
    PRUNED = "pruned", "Pruned"


RUN_ACTIVE = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
RUN_TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.PRUNED})

# The only moves the status service accepts. RUNNING -> QUEUED is a requeue after a lost worker.
# QUEUED -> PRUNED: a prune can reach a run that was requeued (lost worker) before it restarts.
RUN_TRANSITIONS = {
    RunStatus.QUEUED: {RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.PRUNED},
    RunStatus.RUNNING: {RunStatus.QUEUED, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.PRUNED},
    RunStatus.SUCCEEDED: set(),
    RunStatus.FAILED: set(),
    RunStatus.CANCELLED: set(),
    RunStatus.PRUNED: set(),
}


class Device(models.TextChoices):
    CPU = "cpu", "CPU"
    GPU = "gpu", "GPU"


# An experiment's task is its dataset's task: one vocabulary, owned by datasets.
Task = DatasetTask


class Direction(models.TextChoices):
    MAXIMIZE = "maximize", "Maximise"
    MINIMIZE = "minimize", "Minimise"


class RunOrigin(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "Admin"
    CLI = "cli", "Command line"
    SCHEDULE = "schedule", "Schedule"
    DATASET = "dataset", "New dataset version"
    TUNING = "tuning", "Tuning trial"
    RETRY = "retry", "Retry"
    DEMO = "demo", "Demo seed"
    CODE = "code", "Code"


class StopReason(models.TextChoices):
    CANCELLED = "cancelled", "Cancelled"
    PRUNED = "pruned", "Pruned"


def stopped_status(reason: str) -> RunStatus:
    """The terminal status of a run stopped for `reason`: one status per reason, so a pruned run
    reads "Pruned" everywhere and never "Cancelled" or "Succeeded"."""
    return RunStatus.PRUNED if reason == StopReason.PRUNED else RunStatus.CANCELLED


class LogLevel(models.TextChoices):
    DEBUG = "DEBUG", "Debug"
    INFO = "INFO", "Info"
    WARNING = "WARNING", "Warning"
    ERROR = "ERROR", "Error"


class ScheduleKind(models.TextChoices):
    CRON = "cron", "Cron expression"
    INTERVAL = "interval", "Every N units"


class IntervalUnit(models.TextChoices):
    MINUTES = "minutes", "Minutes"
    HOURS = "hours", "Hours"
    DAYS = "days", "Days"
