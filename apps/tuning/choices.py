from django.db import models

# The same choice sets as training's, so forms, the API schema and comparisons agree.
from apps.training.choices import Device, Direction  # noqa: F401


class StudyStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


STUDY_TERMINAL = frozenset({StudyStatus.COMPLETED, StudyStatus.STOPPED, StudyStatus.FAILED})

# Allowed study transitions; anything else is refused by the one service that changes a status.
STUDY_TRANSITIONS = {
    StudyStatus.DRAFT: {StudyStatus.RUNNING, StudyStatus.STOPPED},
    StudyStatus.RUNNING: {StudyStatus.PAUSED, StudyStatus.COMPLETED, StudyStatus.STOPPED, StudyStatus.FAILED},
    StudyStatus.PAUSED: {StudyStatus.RUNNING, StudyStatus.STOPPED},
    StudyStatus.COMPLETED: set(),
    StudyStatus.STOPPED: set(),
    StudyStatus.FAILED: set(),
}


class TrialStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    PRUNED = "pruned", "Pruned"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TRIAL_ACTIVE = frozenset({TrialStatus.QUEUED, TrialStatus.RUNNING})
TRIAL_TERMINAL = frozenset({TrialStatus.COMPLETED, TrialStatus.PRUNED, TrialStatus.FAILED, TrialStatus.CANCELLED})

TRIAL_TRANSITIONS = {
    TrialStatus.QUEUED: {TrialStatus.RUNNING} | TRIAL_TERMINAL,
    TrialStatus.RUNNING: set(TRIAL_TERMINAL),
    TrialStatus.COMPLETED: set(),
    TrialStatus.PRUNED: set(),
    TrialStatus.FAILED: set(),
    TrialStatus.CANCELLED: set(),
}


class Strategy(models.TextChoices):
    GRID = "grid", "Grid search"
    RANDOM = "random", "Random search"
    BAYESIAN = "bayesian", "Bayesian optimisation (Gaussian process)"


class PrunerKind(models.TextChoices):
    NONE = "none", "No pruning"
    MEDIAN = "median", "Median rule"
    SUCCESSIVE_HALVING = "successive_halving", "Successive halving"
