from django.db import models


class RolloutStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    ABORTED = "aborted", "Aborted"
    ROLLED_BACK = "rolled_back", "Rolled back"


OPEN_ROLLOUT_STATUSES = (RolloutStatus.DRAFT, RolloutStatus.RUNNING, RolloutStatus.PAUSED)
TERMINAL_ROLLOUT_STATUSES = (RolloutStatus.COMPLETED, RolloutStatus.ABORTED, RolloutStatus.ROLLED_BACK)


class RolloutAction(models.TextChoices):
    START = "start", "Start"
    PROMOTE = "promote", "Promote"
    PAUSE = "pause", "Pause"
    RESUME = "resume", "Resume"
    ABORT = "abort", "Abort"
    ROLLBACK = "rollback", "Roll back"


class VersionRole(models.TextChoices):
    CHAMPION = "champion", "Champion"
    CHALLENGER = "challenger", "Challenger"
    RETIRED = "retired", "Retired"


class EventKind(models.TextChoices):
    DEPLOYMENT_CREATED = "deployment_created", "Deployment created"
    TRAFFIC_CHANGED = "traffic_changed", "Traffic changed"
    ROLLED_BACK_TO_VERSION = "rolled_back_to_version", "Rolled back to a version"
    ROLLOUT_CREATED = "rollout_created", "Rollout created"
    ROLLOUT_STARTED = "rollout_started", "Rollout started"
    STAGE_ADVANCED = "stage_advanced", "Stage advanced"
    ROLLOUT_PAUSED = "rollout_paused", "Rollout paused"
    ROLLOUT_RESUMED = "rollout_resumed", "Rollout resumed"
    ROLLOUT_COMPLETED = "rollout_completed", "Rollout completed"
    ROLLOUT_ABORTED = "rollout_aborted", "Rollout aborted"
    ROLLOUT_ROLLED_BACK = "rollout_rolled_back", "Rollout rolled back"


class GateState(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    PENDING = "pending", "Pending"
