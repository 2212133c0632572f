from django.db import models


class WhenRolloutOpen(models.TextChoices):
    """What a candidate that clears the margin does while the deployment already has an open rollout."""

    QUEUE = "queue", "Queue the newest candidate until the open rollout ends"
    REPLACE = "replace", "Replace the open rollout's candidate if it has not passed a stage yet"


class EvaluationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed (cleared the margin)"
    REJECTED = "rejected", "Rejected (did not clear the margin)"
    FAILED = "failed", "Failed"


EVALUATION_ACTIVE = (EvaluationStatus.QUEUED, EvaluationStatus.RUNNING)


class EvaluationAction(models.TextChoices):
    """What followed a passed evaluation."""

    NONE = "", "Nothing"
    ROLLOUT_STARTED = "rollout_started", "Rollout started"
    WAITING = "waiting", "Waiting for the open rollout to end"
    SUPERSEDED = "superseded", "Superseded by a newer candidate"
    REEVALUATED = "reevaluated", "Champion changed: evaluated again"
