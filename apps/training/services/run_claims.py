"""Which process runs an attempt: a worker claims a delivered run, or drops the delivery.

Celery delivers a message at least once (acks_late, redelivery after a lost worker). The claim
locks the run and decides: a run that ended, or whose current attempt is still alive somewhere, is
not started again; a lost attempt counts against max_attempts; otherwise this process takes the
next attempt and records where it runs and with which code and libraries.
"""

import logging
import os
import platform
import socket
import subprocess
from datetime import timedelta
from functools import lru_cache
from importlib import metadata

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.training import conf
from apps.training.choices import RUN_TERMINAL, RunStatus, stopped_status
from apps.training.models import TrainingRun
from apps.training.services.runs import run_log_append, run_status_transition

logger = logging.getLogger(__name__)

LIBRARIES = (
    "django",
    "celery",
    "numpy",
    "pandas",
    "scikit-learn",
    "torch",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "skops",
    "safetensors",
    "xgboost",
    "lightgbm",
)


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit the code runs from (GIT_COMMIT wins, e.g. in images without .git)."""
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"][:64]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()[:64]
    except (OSError, subprocess.SubprocessError):
        return ""


@lru_cache(maxsize=1)
def library_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def attempt_alive(run: TrainingRun) -> bool:
    """Whether the run's current attempt may still be executing somewhere (then a second delivery
    of its message is a duplicate and must not start another attempt)."""
    from apps.training.reporter import is_local_active

    stale = timezone.now() - timedelta(seconds=float(conf.get("TRAINING_HEARTBEAT_STALE_SECONDS")))
    fresh = run.heartbeat_at is not None and run.heartbeat_at >= stale
    if run.worker_host == socket.gethostname():
        if run.worker_pid == os.getpid():
            return is_local_active(run.pk)
        # Same host: the process table is the truth (a SIGKILLed pool process is gone at once).
        return fresh and pid_alive(run.worker_pid)
    return fresh


def claim_attempt(*, run_id: int, celery_task_id: str) -> TrainingRun | None:
    """Takes the run for a new attempt in this process, or returns None when it must not run."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            logger.warning("training run %s does not exist; message dropped", run_id)
            return None
        if run.status in RUN_TERMINAL:
            logger.info("training run %s already %s; message dropped", run_id, run.status)
            return None
        if run.status == RunStatus.RUNNING:
            if attempt_alive(run):
                logger.info("training run %s attempt %s is alive elsewhere; duplicate dropped", run_id, run.attempts)
                return None
            lost = (
                f"attempt {run.attempts} on {run.worker_host or '?'} (pid {run.worker_pid}) was lost: its worker died"
            )
            run_log_append(run_id=run.pk, level="ERROR", message=lost, attempt=run.attempts)
            if run.attempts >= run.max_attempts:
                run_status_transition(
                    run_id=run.pk,
                    to=RunStatus.FAILED,
                    reason=f"{lost}; giving up after {run.attempts} attempts",
                    fields={"error_message": f"{lost}; gave up after {run.attempts} of {run.max_attempts} attempts."},
                )
                return None
            run = run_status_transition(run_id=run.pk, to=RunStatus.QUEUED, reason=f"{lost}; redelivered")
        if run.stop_requested:
            run_status_transition(
                run_id=run.pk,
                to=stopped_status(run.stop_requested),
                reason=f"{run.stop_requested} before start",
                fields={"stop_reason": run.stop_requested},
            )
            return None
        if run.attempts >= run.max_attempts:
            run_status_transition(
                run_id=run.pk,
                to=RunStatus.FAILED,
                reason=f"no attempts left ({run.attempts}/{run.max_attempts})",
                fields={"error_message": f"gave up after {run.attempts} of {run.max_attempts} attempts."},
            )
            return None
        attempt = run.attempts + 1
        host = socket.gethostname()
        return run_status_transition(
            run_id=run.pk,
            to=RunStatus.RUNNING,
            reason=f"attempt {attempt}/{run.max_attempts} on {host} pid {os.getpid()}",
            fields={
                "attempts": attempt,
                "worker_host": host,
                "worker_pid": os.getpid(),
                "celery_task_id": celery_task_id or run.celery_task_id,
                "code_version": code_version(),
                "library_versions": library_versions(),
                "current_epoch": 0,
                "total_epochs": 0,
                "progress": 0.0,
                "eta_seconds": None,
                "error_message": "",
                "traceback": "",
            },
        )
