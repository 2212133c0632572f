"""Training settings with defaults. Each may be set in Django settings or, for worker processes that
only share the environment, as an environment variable of the same name."""

from django.conf import settings

from mlops_portal.env import env_int, env_str

_DEFAULTS = {
    # The running attempt writes a heartbeat this often; the reaper calls a run lost after STALE.
    "TRAINING_HEARTBEAT_SECONDS": 5,
    "TRAINING_HEARTBEAT_STALE_SECONDS": 60,
    # How often the running attempt looks at the database for a stop request.
    "TRAINING_STOP_POLL_SECONDS": 0.5,
    "TRAINING_REAPER_INTERVAL_SECONDS": 30,
    # A dropped database connection (PgBouncer restart, failover, idle timeout) is reopened and the
    # write retried for this long before the attempt gives up on the database.
    "TRAINING_DB_RETRY_SECONDS": 30,
    # A QUEUED run older than this that no worker holds has lost its message: the reaper requeues it.
    "TRAINING_QUEUED_STALE_SECONDS": 600,
    # Attempt, artifact-temp and temp folders no live run or recorded artifact owns are removed by the
    # hourly sweep once their newest file is this old (services/cleanup.py).
    "TRAINING_ORPHAN_MAX_AGE_SECONDS": 6 * 3600,
    # Log lines and epoch results are stored by a background thread (1) or by the training thread (0).
    "TRAINING_WRITE_BEHIND": 1,
    "TRAINING_CPU_QUEUE": "cpu",
    "TRAINING_GPU_QUEUE": "gpu",
}


def get(name: str):
    """Django settings first (tests override them), then the environment, then the default."""
    if hasattr(settings, name):
        return getattr(settings, name)
    default = _DEFAULTS[name]
    if isinstance(default, str):
        return env_str(name, default)
    if isinstance(default, float):
        raw = env_str(name, "")
        return float(raw) if raw.strip() else default
    return env_int(name, default)


def max_attempts() -> int:
    return int(getattr(settings, "CELERY_TASK_MAX_ATTEMPTS", 3))
