"""
==============================================================================
FILE: apps/training/services/training_pipeline.py
ROLE: Public entry point of the training pipeline: start, stop, retry, execute and reap runs.
PURPOSE: Turn "train experiment X with framework F" (admin, API, CLI, beat schedule, new dataset
    version, tuning trial) into a TrainingRun that a Celery worker executes exactly once to a
    terminal status, with live logs and progress, a verified artifact and a registered version.
INTEGRATION POINTS:
    - apps.datasets: dataset_version_latest / dataset_version_dataframe, prepare_training_data
      (the preprocessor is fitted on the training split only), FittedPreprocessor.to_dict.
    - apps.training.frameworks: get_adapter(framework).fit / save, NoGpuAvailable, reporter protocol.
    - apps.registry: artifact_commit (temporary key, then commit), model_version_create_from_run.
    - apps.training.tasks: run_training (queues cpu / gpu, acks_late + reject_on_worker_lost),
      reap_stale_runs (beat), retrain_experiment (beat schedules).
    - Channels groups training-run-<id> and training-runs (apps.training.live); signals
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
import logging
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from datetime import timedelta
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from django.conf import settings
from threadpoolctl import threadpool_limits
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.limits import INT32_MAX
from apps.training import conf, live
from apps.training.choices import RUN_TERMINAL, Device, RunOrigin, RunStatus, StopReason, stopped_status
from apps.training.frameworks.devices import training_threads
from apps.training.models import Experiment, RunEvent, TrainingRun
from apps.training.services.experiments import validate_training_config
from apps.training.services.runs import (
    DB_CONNECTION_ERRORS,
    RunStateError,
    db_reconnect,
    db_retrying,
    json_safe,
    run_finish,
    run_log_append,
    run_status_announce,
    run_status_transition,
    status_message,
)

logger = logging.getLogger(__name__)

__all__ = [
    "RunStateError",
    "training_run_execute",
    "training_run_request_stop",
    "training_run_retry",
    "training_run_start",
    "training_runs_reap",
]

GIL_SWITCH_INTERVAL = 0.001
LIBRARIES = ("django", "celery", "numpy", "pandas", "scikit-learn", "torch", "tensorflow-cpu", "tensorflow", "keras",
             "skops", "safetensors", "xgboost", "lightgbm")


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


def queue_for_device(device: str) -> str:
    return conf.get("TRAINING_GPU_QUEUE") if device == Device.GPU else conf.get("TRAINING_CPU_QUEUE")


def _dispatch(run_id: int, queue: str, task_id: str) -> None:
    from apps.training.tasks import run_training

    run_training.apply_async(args=[run_id], queue=queue, routing_key=queue, task_id=task_id)


@transaction.atomic
def training_run_start(
    *,
    experiment: Experiment,
    framework: str,
    model_type: str,
    params: dict | None,
    device: str = Device.CPU,
    user=None,
    seed: int | None = None,
    register_model: bool = True,
    trial=None,
    origin: str = RunOrigin.CODE,
    idempotency_key: str | None = None,
    dataset_version=None,
    retry_of: TrainingRun | None = None,
    dispatch: bool = True,
) -> TrainingRun:
    """Creates a QUEUED run and, once the transaction commits, queues it on `cpu` or `gpu`.

    Trains on `dataset_version` or else the dataset's newest version. With an `idempotency_key`
    already used, returns that run instead of starting another. `dispatch=False` leaves the run
    for an in-process training_run_execute (seed_demo). Raises ValidationError naming the field.
    """
    from apps.datasets.selectors import dataset_version_latest

    if idempotency_key:
        existing = TrainingRun.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    if origin not in RunOrigin.values:
        raise ValidationError({"origin": f"must be one of {RunOrigin.values}."})
    params = validate_training_config(framework=framework, model_type=model_type, params=params, device=device)
    if seed is None:
        seed = experiment.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not (0 <= seed <= INT32_MAX):
        raise ValidationError({"seed": f"must be a whole number between 0 and {INT32_MAX}."})
    if dataset_version is None:
        dataset_version = dataset_version_latest(dataset=experiment.dataset)
        if dataset_version is None:
            raise ValidationError({"experiment": f"dataset {experiment.dataset.name} has no version to train on yet."})
    elif dataset_version.dataset_id != experiment.dataset_id:
        raise ValidationError({"dataset_version": f"{dataset_version} is not a version of {experiment.dataset.name}."})

    queue = queue_for_device(device)
    task_id = str(uuid.uuid4())
    fields = dict(
        experiment=experiment, dataset_version=dataset_version, dataset_sha256=dataset_version.sha256,
        feature_spec=experiment.feature_spec.spec if experiment.feature_spec_id else {},
        framework=framework, model_type=model_type, params=params, device=device, queue=queue, seed=seed,
        origin=origin, register_model=register_model, trial_id=getattr(trial, "pk", trial), retry_of=retry_of,
        idempotency_key=idempotency_key or None, created_by=user, celery_task_id=task_id,
        max_attempts=conf.max_attempts(), status=RunStatus.QUEUED,
    )
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(**fields)
    except IntegrityError:
        if idempotency_key:  # the same key won a race a moment ago
            return TrainingRun.objects.get(idempotency_key=idempotency_key)
        raise
    who = f" by {user}" if user else ""
    RunEvent.objects.create(run=run, from_status="", to_status=RunStatus.QUEUED, reason=f"created ({origin}){who}",
                            actor=user)
    message = status_message(run)

    def after_commit():
        live.publish(live.RUNS_GROUP, message)
        if dispatch:
            _dispatch_or_fail(run.pk, queue, task_id)

    transaction.on_commit(after_commit)
    return run


def _dispatch_or_fail(run_id: int, queue: str, task_id: str) -> None:
    """Queues the run's message; if the broker cannot take it, the run ends FAILED saying so
    (rather than waiting QUEUED for a message that does not exist)."""
    try:
        _dispatch(run_id, queue, task_id)
    except Exception as exc:
        logger.exception("could not queue training run %s", run_id)
        reason = f"could not queue the run on {queue!r}: {type(exc).__name__}: {exc}"
        try:
            run_status_transition(run_id=run_id, to=RunStatus.FAILED, reason=reason[:500],
                                  fields={"error_message": reason[:4000]})
        except RunStateError:
            pass  # already picked up or ended meanwhile


@transaction.atomic
def training_run_request_stop(*, run: TrainingRun, reason: str = StopReason.CANCELLED, user=None) -> TrainingRun:
    """Cancels (or prunes) a run: a QUEUED run ends at once; a RUNNING one stops at its next batch
    or epoch boundary and then ends CANCELLED (PRUNED for reason "pruned") with stop_reason `reason`,
    even when the request lands after its last epoch (run_finish). An ended run: RunStateError."""
    if reason not in StopReason.values:
        raise ValidationError({"reason": f"must be one of {StopReason.values}."})
    locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
    who = f" by {user}" if user else ""
    if locked.status in RUN_TERMINAL:
        raise RunStateError({"status": f"run {locked.pk} already ended ({locked.status})."})
    if locked.status == RunStatus.QUEUED:
        return run_status_transition(
            run_id=locked.pk, to=stopped_status(reason), reason=f"{reason}{who} before it started", actor=user,
            fields={"stop_requested": reason, "stop_reason": reason},
        )
    if not locked.stop_requested:
        TrainingRun.objects.filter(pk=locked.pk).update(stop_requested=reason)
        locked.stop_requested = reason
        RunEvent.objects.create(run=locked, from_status=locked.status, to_status=locked.status,
                                attempt=locked.attempts, reason=f"stop requested ({reason}){who}", actor=user)
        run_log_append(run_id=locked.pk, level="WARNING", message=f"stop requested ({reason}){who}",
                       attempt=locked.attempts)

        def tell_local_watcher():
            from apps.training.reporter import local_stop

            local_stop(locked.pk, reason)

        transaction.on_commit(tell_local_watcher)
    return locked


def training_run_retry(*, run: TrainingRun, user=None) -> TrainingRun:
    """A new run with the same experiment, data version, framework, params, device and seed."""
    run = TrainingRun.objects.select_related("experiment", "dataset_version").get(pk=run.pk)
    if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
        raise RunStateError({"status": f"only failed or cancelled runs can be retried; run {run.pk} is {run.status}."})
    return training_run_start(
        experiment=run.experiment, framework=run.framework, model_type=run.model_type, params=run.params,
        device=run.device, user=user, seed=run.seed, register_model=run.register_model, trial=run.trial_id,
        origin=RunOrigin.RETRY, dataset_version=run.dataset_version, retry_of=run,
    )


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _attempt_alive(run: TrainingRun) -> bool:
    """Whether the run's current attempt may still be executing somewhere (then a second delivery
    of its message is a duplicate and must not start another attempt)."""
    from apps.training.reporter import is_local_active

    stale = timezone.now() - timedelta(seconds=float(conf.get("TRAINING_HEARTBEAT_STALE_SECONDS")))
    fresh = run.heartbeat_at is not None and run.heartbeat_at >= stale
    if run.worker_host == socket.gethostname():
        if run.worker_pid == os.getpid():
            return is_local_active(run.pk)
        # Same host: the process table is the truth (a SIGKILLed pool process is gone at once).
        return fresh and _pid_alive(run.worker_pid)
    return fresh


def _claim(*, run_id: int, celery_task_id: str) -> TrainingRun | None:
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
            if _attempt_alive(run):
                logger.info("training run %s attempt %s is alive elsewhere; duplicate dropped", run_id, run.attempts)
                return None
            lost = f"attempt {run.attempts} on {run.worker_host or '?'} (pid {run.worker_pid}) was lost: its worker died"
            run_log_append(run_id=run.pk, level="ERROR", message=lost, attempt=run.attempts)
            if run.attempts >= run.max_attempts:
                run_status_transition(
                    run_id=run.pk, to=RunStatus.FAILED, reason=f"{lost}; giving up after {run.attempts} attempts",
                    fields={"error_message": f"{lost}; gave up after {run.attempts} of {run.max_attempts} attempts."},
                )
                return None
            run = run_status_transition(run_id=run.pk, to=RunStatus.QUEUED, reason=f"{lost}; redelivered")
        if run.stop_requested:
            run_status_transition(run_id=run.pk, to=stopped_status(run.stop_requested),
                                  reason=f"{run.stop_requested} before start", fields={"stop_reason": run.stop_requested})
            return None
        if run.attempts >= run.max_attempts:
            run_status_transition(
                run_id=run.pk, to=RunStatus.FAILED, reason=f"no attempts left ({run.attempts}/{run.max_attempts})",
                fields={"error_message": f"gave up after {run.attempts} of {run.max_attempts} attempts."},
            )
            return None
        attempt = run.attempts + 1
        host = socket.gethostname()
        return run_status_transition(
            run_id=run.pk, to=RunStatus.RUNNING, reason=f"attempt {attempt}/{run.max_attempts} on {host} pid {os.getpid()}",
            fields={
                "attempts": attempt, "worker_host": host, "worker_pid": os.getpid(),
                "celery_task_id": celery_task_id or run.celery_task_id, "code_version": code_version(),
                "library_versions": library_versions(), "current_epoch": 0, "total_epochs": 0, "progress": 0.0,
                "eta_seconds": None, "error_message": "", "traceback": "",
            },
        )


class _Stopped(Exception):
    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def build_signature(*, data, preprocessor, trained, experiment: Experiment, dataset_version) -> dict:
    """The input/output contract of the model, as stored with the version and shown to clients."""
    raw_columns = list(getattr(preprocessor, "raw_columns", []) or [])
    schema = {c["name"]: c.get("dtype") for c in (dataset_version.schema or []) if isinstance(c, dict)}
    window = int(getattr(trained, "window", 1) or 1)
    preprocessor_rows = int(getattr(preprocessor, "history_rows", 1) or 1)
    classes = list(data.classes) if getattr(data, "classes", None) is not None else None
    return json_safe({
        "inputs": [{"name": c, "dtype": schema.get(c, "unknown")} for c in raw_columns],
        "raw_columns": raw_columns,
        "feature_names": list(data.feature_names),
        "feature_dtypes": {name: "float32" for name in data.feature_names},
        "entity_column": getattr(preprocessor, "entity_column", None) or "",
        "time_column": getattr(preprocessor, "time_column", None) or "",
        "preprocessor_history_rows": preprocessor_rows,
        "window": window,
        "history_rows": preprocessor_rows + window - 1,
        "task": experiment.task,
        "target": experiment.target,
        "classes": classes,
        "output": {"name": "prediction", "dtype": "string" if classes and any(isinstance(c, str) for c in classes)
                   else ("int64" if experiment.task == "classification" else "float64")},
    })


EXAMPLE_ENTITIES = 3


def input_example(*, df, preprocessor, trained, signature: dict, run: TrainingRun) -> dict | None:
    """The newest raw rows of a few entities (exactly the history one prediction needs) and what the
    freshly trained, in-memory model predicts for them. Stored with the artifact, it lets anyone
    check that the saved-and-loaded model answers exactly as the trained one did."""
    import json

    from apps.registry.loading import LoadedModel

    need = int(signature.get("history_rows", 1))
    entity, time_column = preprocessor.entity_column, preprocessor.time_column
    rows = df
    if time_column:
        rows = rows.sort_values(([entity] if entity else []) + [time_column], kind="stable")
    if entity:
        keep = list(dict.fromkeys(rows[entity].tolist()))[:EXAMPLE_ENTITIES]
        rows = rows[rows[entity].isin(keep)].groupby(entity, sort=False).tail(need)
    else:
        rows = rows.tail(max(need, 5))
    rows = rows[list(preprocessor.raw_columns)].reset_index(drop=True)
    model = LoadedModel(version_id=0, name="", version=0, framework=run.framework, task=run.experiment.task,
                        signature=signature, preprocessor=preprocessor, trained=trained,
                        classes=signature.get("classes"))
    try:
        predictions, labels = model.predict_raw(rows)
        probabilities = model.predict_proba_raw(rows)[0].tolist() if model.task == "classification" else None
    except ValueError as exc:  # the preprocessor's InvalidInput / InsufficientHistory
        logger.warning("run %s: no input example: %s", run.pk, exc)
        return None
    example = {
        "rows": json.loads(rows.to_json(orient="records", date_format="iso")),
        "predictions": predictions,
        "labels": [str(label) for label in labels],
    }
    if probabilities is not None:
        example["probabilities"] = probabilities  # one row per prediction, in signature["classes"] order
    return json_safe(example)


def _train(run: TrainingRun, reporter, watcher) -> dict:
    """The work of one attempt; returns the fields of the SUCCEEDED transition."""
    import json

    from apps.datasets.preprocessing import prepare_training_data
    from apps.datasets.selectors import dataset_version_dataframe
    from apps.registry.loading import EXAMPLE_FILE, MODEL_DIR, PREPROCESSOR_FILE, SIGNATURE_FILE
    from apps.registry.storage import artifact_commit
    from apps.training.frameworks import get_adapter
    from apps.training.frameworks.model_types import plugin_provenance

    def check_stop():
        if watcher.stop_reason:
            raise _Stopped(watcher.stop_reason)

    experiment = run.experiment
    version = run.dataset_version
    reporter.log("INFO", f"attempt {run.attempts}/{run.max_attempts} on {run.worker_host} (pid {run.worker_pid}), "
                         f"{run.framework}/{run.model_type} on {run.device}, seed {run.seed}")
    reporter.log("INFO", f"loading {version} ({version.rows} rows, sha256 {version.sha256[:12]})")
    df = dataset_version_dataframe(version=version)
    check_stop()
    data = prepare_training_data(df=df, dataset=experiment.dataset, spec=run.feature_spec, seed=run.seed)
    sizes = ", ".join(f"{s} {len(getattr(data, f'X_{s}'))}" for s in ("train", "val", "test"))
    reporter.log("INFO", f"features: {len(data.feature_names)} ({sizes} rows); preprocessor fitted on train only")
    check_stop()

    adapter = get_adapter(run.framework)
    fit_started, fit_cpu = time.perf_counter(), time.process_time()
    trained = adapter.fit(
        data=data, task=experiment.task, model_type=run.model_type, params=run.params, seed=run.seed,
        device=run.device, reporter=reporter, monitor=experiment.primary_metric,
    )
    if trained.stopped_reason:
        raise _Stopped(trained.stopped_reason)
    reporter.log("INFO", f"fit: {trained.epochs_trained} epochs in {time.perf_counter() - fit_started:.1f} s "
                         f"({time.process_time() - fit_cpu:.1f} s CPU)")
    check_stop()
    # The adapter caps threads during the fit only; evaluation and the input example predict too, and
    # uncapped OpenMP pools in two pool processes on two cores spin against each other (~4x slower).
    with threadpool_limits(limits=training_threads()):
        evaluation, signature, example = _evaluate_and_describe(
            run=run, df=df, data=data, trained=trained, experiment=experiment, dataset_version=version)
        plots = _evaluation_plots(trained=trained, data=data, reporter=reporter)
    val_metrics = json_safe(evaluation.get("val", {}))
    test_metrics = json_safe(evaluation.get("test", {}))
    primary = val_metrics.get(experiment.primary_metric)
    shown = f"{primary:.4g}" if isinstance(primary, (int, float)) else "n/a"
    reporter.log("INFO", f"validation {experiment.primary_metric}={shown}; test: "
                         + ", ".join(f"{k}={v:.4g}" for k, v in test_metrics.items() if isinstance(v, (int, float))))

    if example is None:
        reporter.log("WARNING", "no input example: the newest rows could not be predicted")
    with tempfile.TemporaryDirectory(prefix=f"run-{run.pk}-") as tmp:
        folder = Path(tmp)
        adapter.save(trained, folder / MODEL_DIR)
        (folder / PREPROCESSOR_FILE).write_text(json.dumps(data.preprocessor.to_dict(), sort_keys=True))
        (folder / SIGNATURE_FILE).write_text(json.dumps(signature, sort_keys=True))
        if example is not None:
            (folder / EXAMPLE_FILE).write_text(json.dumps(example, sort_keys=True))
        committed = artifact_commit(
            local_dir=folder, prefix=f"runs/{run.pk}/attempt-{run.attempts}-{secrets.token_hex(4)}",
            extra={"run": run.pk, "framework": run.framework, "model_type": run.model_type},
        )
    reporter.log("INFO", f"artifact committed at {committed.uri} (manifest sha256 {committed.sha256[:12]}, "
                         f"{len(committed.manifest['files'])} files)")
    return {
        "val_metrics": val_metrics, "test_metrics": test_metrics, "primary_metric_value": primary,
        "artifact_uri": committed.uri, "artifact_sha256": committed.sha256, "signature": signature,
        "plugin": plugin_provenance(adapter.model_type(run.model_type)), "evaluation": plots,
    }


def _evaluation_plots(*, trained, data, reporter) -> dict:
    """Confusion matrix / ROC / PR or residuals for the admin pages. They only illustrate metrics the
    run already has, so a failure here is logged and the run still succeeds without them."""
    from apps.training.evaluation import evaluation_plots

    try:
        return json_safe(evaluation_plots(trained=trained, data=data))
    except Exception as exc:  # noqa: BLE001 - see docstring
        reporter.log("WARNING", f"evaluation plots skipped: {type(exc).__name__}: {exc}")
        return {}


def _evaluate_and_describe(*, run, df, data, trained, experiment, dataset_version):
    evaluation = trained.evaluate_data(data)
    signature = build_signature(data=data, preprocessor=data.preprocessor, trained=trained, experiment=experiment,
                                dataset_version=dataset_version)
    example = input_example(df=df, preprocessor=data.preprocessor, trained=trained, signature=signature, run=run)
    return evaluation, signature, example


def _finish_success(run: TrainingRun, fields: dict) -> TrainingRun:
    """SUCCEEDED and the registered version in one transaction, retried on a dropped connection."""
    from apps.registry.services import model_version_create_from_run

    tries = 0

    def finish():
        nonlocal tries
        tries += 1
        if tries > 1:  # the commit may have gone through and only its answer been lost
            done = TrainingRun.objects.filter(pk=run.pk, status=RunStatus.SUCCEEDED, attempts=run.attempts,
                                              artifact_uri=fields["artifact_uri"]).first()
            done = done or TrainingRun.objects.filter(pk=run.pk, attempts=run.attempts, stop_reason__gt="",
                                                      status__in=(RunStatus.CANCELLED, RunStatus.PRUNED)).first()
            if done is not None:
                return done
        with transaction.atomic():
            # SUCCEEDED, or PRUNED / CANCELLED when a stop request landed after the last epoch.
            done = run_finish(run_id=run.pk, fields=fields, expected_attempt=run.attempts)
            if run.register_model and done.status == RunStatus.SUCCEEDED:
                version = model_version_create_from_run(run=done, name=run.experiment.model_name, user=run.created_by)
                run_log_append(run_id=run.pk, level="INFO", attempt=run.attempts,
                               message=f"registered as {version.registered_model.name} version {version.version}")
            # After the last log line: a viewer may stop listening at the terminal status.
            run_status_announce(done)
        return done

    # The training thread's connection sat idle through the whole fit: a PgBouncer restart or an
    # idle timeout may have closed it without a sound. Start the final writes on a fresh one.
    db_reconnect()
    return db_retrying(finish, what=f"run {run.pk} finish")


def _safe_transition(run: TrainingRun, **kwargs) -> None:
    def transition():
        run_status_transition(run_id=run.pk, expected_attempt=run.attempts, **kwargs)

    try:
        db_reconnect()
        db_retrying(transition, what=f"run {run.pk} -> {kwargs.get('to')}")
    except RunStateError as exc:  # superseded meanwhile: the attempt that owns the run decides
        logger.warning("run %s: %s", run.pk, exc)


def _requeue_or_fail_after_db_loss(run: TrainingRun, exc: Exception, extra: dict) -> bool:
    """The attempt lost the database for longer than TRAINING_DB_RETRY_SECONDS. That is the
    attempt's fault, not the run's: requeue it for a new attempt while attempts are left, else end
    it FAILED naming the database. Returns False when even this could not be stored (the database
    is still down): the run stays RUNNING without heartbeats and the reaper decides later."""
    cause = f"{type(exc).__name__}: {str(exc).strip()}"[:1000]
    lost = f"attempt {run.attempts} lost the database (gave up after {conf.get('TRAINING_DB_RETRY_SECONDS')} s of retries): {cause}"

    def record():
        with transaction.atomic():
            current = TrainingRun.objects.select_for_update().get(pk=run.pk)
            if current.status != RunStatus.RUNNING or current.attempts != run.attempts:
                return  # superseded meanwhile: the attempt that owns the run decides
            run_log_append(run_id=run.pk, level="ERROR", message=lost, attempt=run.attempts)
            if current.attempts >= current.max_attempts:
                run_status_transition(
                    run_id=run.pk, to=RunStatus.FAILED, reason=f"{lost}; giving up after {current.attempts} attempts"[:4000],
                    fields={"error_message": f"database unavailable: {lost}; gave up after {current.attempts} of "
                                             f"{current.max_attempts} attempts."[:4000],
                            "traceback": traceback.format_exc()[-20000:]} | extra,
                )
            else:
                task_id = str(uuid.uuid4())
                run_status_transition(run_id=run.pk, to=RunStatus.QUEUED, reason=f"{lost}; requeued"[:4000],
                                      fields={"celery_task_id": task_id})
                transaction.on_commit(lambda: _dispatch_or_fail(run.pk, current.queue, task_id))

    try:
        db_reconnect()
        db_retrying(record, what=f"run {run.pk} database-loss outcome")
        return True
    except DB_CONNECTION_ERRORS:
        logger.critical("run %s: %s; could not store the outcome either, the reaper will decide", run.pk, lost)
        return False


def training_run_execute(*, run_id: int, celery_task_id: str = "") -> TrainingRun | None:
    """Executes one attempt of run `run_id` in this process (the Celery task, or seed_demo inline).

    Returns the run after its final status, or None when the message was a duplicate or the run
    had already ended. Never raises for training errors: they end the run FAILED with the reason.
    """
    from apps.training.frameworks import NoGpuAvailable
    from apps.training.reporter import RunReporter, RunWatcher, RunWriter

    # The pool process's connection may have been dropped since its last task.
    run = db_retrying(lambda: _claim(run_id=run_id, celery_task_id=celery_task_id), what=f"run {run_id} claim")
    if run is None:
        return None
    attempt = run.attempts
    sync = not conf.get("TRAINING_WRITE_BEHIND")
    cpu_started = time.process_time()
    # The writer, watcher and publisher threads wait for the GIL after each database or Redis
    # round trip; a shorter switch interval bounds that wait, and so the latency of live logs.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, GIL_SWITCH_INTERVAL))

    def cpu() -> dict:
        return {"cpu_seconds": round(time.process_time() - cpu_started, 3)}

    try:
        with RunWatcher(run.pk, attempt) as watcher, RunWriter(run, attempt, sync=sync) as writer:
            reporter = RunReporter(run, attempt, watcher, writer)
            try:
                fields = _train(run, reporter, watcher)
                artifact_uri = fields["artifact_uri"]
                reporter.flush()  # every line and epoch stored before the run may end
                from apps.registry.storage import artifact_delete

                try:
                    done = _finish_success(run, fields | cpu())
                except Exception:
                    artifact_delete(uri=artifact_uri)  # never leave an artifact no run or version owns
                    raise
                if done.status != RunStatus.SUCCEEDED:
                    artifact_delete(uri=artifact_uri)  # stopped after its last epoch: nothing owns it
            except _Stopped as stop:
                if stop.reason == "superseded":
                    logger.warning("run %s attempt %s was superseded; stopping without a status change", run.pk, attempt)
                else:
                    reporter.log("WARNING", f"stopped: {stop.reason}")
                    reporter.flush()
                    _safe_transition(run, to=stopped_status(stop.reason), reason=f"stopped ({stop.reason})",
                                     fields={"stop_reason": stop.reason} | cpu())
            except DB_CONNECTION_ERRORS as exc:  # still no database after the retries
                logger.exception("training run %s lost the database", run.pk)
                writer.flush(timeout=float(conf.get("TRAINING_DB_RETRY_SECONDS")))
                if not _requeue_or_fail_after_db_loss(run, exc, cpu()):
                    return None
            except NoGpuAvailable as exc:
                reporter.log("ERROR", str(exc))
                reporter.flush()
                _safe_transition(run, to=RunStatus.FAILED, reason="no GPU", fields={"error_message": str(exc)} | cpu())
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                logger.exception("training run %s failed", run.pk)
                reporter.log("ERROR", message)
                reporter.flush()
                _safe_transition(run, to=RunStatus.FAILED, reason=message[:500],
                                 fields={"error_message": message[:4000], "traceback": traceback.format_exc()[-20000:]}
                                 | cpu())
    finally:
        live.flush(timeout=5)
        sys.setswitchinterval(switch_interval)
    return db_retrying(lambda: TrainingRun.objects.select_related("experiment").get(pk=run.pk), what=f"run {run.pk}")


# The reaper lives in its own module; callers (beat's task, tests) may keep importing it from here.
from apps.training.services.reaper import training_runs_reap  # noqa: E402,F401
