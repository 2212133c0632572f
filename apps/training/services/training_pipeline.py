"""
==============================================================================
FILE: apps/training/services/training_pipeline.py
ROLE: Public entry point of the training pipeline: start, stop, retry, execute and reap runs.
    Callers import from here; the work lives in modules named for their jobs, beside this one:
    run_lifecycle (start, stop, retry, queue on commit), run_claims (a worker claims a delivery;
    live attempt or lost one; code and library provenance), signatures (signature and input
    example), run_execution (one attempt: train, evaluate, save, commit, finish), registration (a
    succeeded run becomes a model version), reaper (stale heartbeats, lost queue messages), on top
    of runs (status machine, logs, database retries).
PURPOSE: Turn "train experiment X with framework F" (admin, API, CLI, beat schedule, new dataset
    version, tuning trial) into a TrainingRun that a Celery worker executes exactly once to a
    terminal status, with live logs and progress, a verified artifact and a registered version.
INTEGRATION POINTS:
    - apps.datasets: dataset_version_latest / dataset_version_dataframe, prepare_training_data
      (the preprocessor is fitted on the training split only), FittedPreprocessor.to_dict.
    - apps.frameworks: get_adapter(framework).fit / save, NoGpuAvailable, reporter protocol.
    - apps.registry: artifact_commit (temporary key, then commit), model_version_create (called by
      registration.model_version_create_from_run), the artifact layout of apps.registry.loading.
    - apps.training.tasks: run_training (queues cpu / gpu, acks_late + reject_on_worker_lost),
      reap_stale_runs (beat), retrain_experiment (beat schedules).
    - Channels groups training-run-<id> and training-runs (apps.core.live); signals
      run_epoch_completed and run_finished (apps.training.signals) for tuning and dashboards.
FEATURES:
    - Status machine QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED | PRUNED through one service that
      writes a RunEvent; attempts counted in the database, bounded by CELERY_TASK_MAX_ATTEMPTS.
    - Duplicate deliveries are detected (live attempt elsewhere) and dropped; a lost attempt (dead
      pid, stale heartbeat) is retried or failed with the reason.
    - Cancellation and pruning at the next batch / epoch via a watcher thread (no I/O per batch).
    - Per-epoch metrics, progress % and ETA, seq-numbered log lines, all stored and pushed live.
    - Reproducible: seed, dataset sha256, feature spec snapshot, code version, library versions.
    - Idempotency keys so one schedule tick or one new dataset version starts one run only.
AUTHOR: AI Investor Team
==============================================================================
"""

from apps.training.services.reaper import training_runs_reap
from apps.training.services.run_claims import claim_attempt
from apps.training.services.run_execution import requeue_or_fail_after_db_loss, training_run_execute
from apps.training.services.run_lifecycle import (
    dispatch_run,
    training_run_request_stop,
    training_run_retry,
    training_run_start,
)
from apps.training.services.runs import RunStateError

# The worker-fault tests and the log-latency bench drive these steps directly, under these names.
_dispatch = dispatch_run
_claim = claim_attempt
_requeue_or_fail_after_db_loss = requeue_or_fail_after_db_loss

__all__ = [
    "RunStateError",
    "training_run_execute",
    "training_run_request_stop",
    "training_run_retry",
    "training_run_start",
    "training_runs_reap",
]
