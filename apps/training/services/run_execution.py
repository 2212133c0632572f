"""One attempt of a run, in the worker process: train, evaluate, save, commit and finish.

training_run_execute claims the run (run_claims), prepares the data (the preprocessor is fitted on
the training split only), fits through the framework adapter with a reporter that stores and pushes
logs and epochs, writes the artifact (model, preprocessor, signature, input example), then ends the
run SUCCEEDED with its registered version in one transaction, or CANCELLED / PRUNED / FAILED with
the reason. A lost database is retried, then the attempt is requeued or the run failed.
"""

import json
import logging
import secrets
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path

from django.db import transaction
from threadpoolctl import threadpool_limits

from apps.core import live
from apps.training import conf
from apps.training.choices import RunStatus, stopped_status
from apps.frameworks.devices import training_threads
from apps.training.models import TrainingRun
from apps.training.services.run_claims import claim_attempt
from apps.training.services.run_lifecycle import dispatch_or_fail
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
)
from apps.training.services.signatures import build_signature, input_example

logger = logging.getLogger(__name__)

GIL_SWITCH_INTERVAL = 0.001


class _Stopped(Exception):
    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def _train(run: TrainingRun, reporter, watcher) -> dict:
    """The work of one attempt; returns the fields of the SUCCEEDED transition."""
    from apps.datasets.preprocessing import prepare_training_data
    from apps.datasets.selectors import dataset_version_dataframe
    from apps.registry.loading import EXAMPLE_FILE, MODEL_DIR, PREPROCESSOR_FILE, SIGNATURE_FILE
    from apps.registry.storage import artifact_commit
    from apps.frameworks import get_adapter
    from apps.frameworks.model_types import plugin_provenance

    def check_stop():
        if watcher.stop_reason:
            raise _Stopped(watcher.stop_reason)

    experiment = run.experiment
    version = run.dataset_version
    reporter.log(
        "INFO",
        f"attempt {run.attempts}/{run.max_attempts} on {run.worker_host} (pid {run.worker_pid}), "
        f"{run.framework}/{run.model_type} on {run.device}, seed {run.seed}",
    )
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
        data=data,
        task=experiment.task,
        model_type=run.model_type,
        params=run.params,
        seed=run.seed,
        device=run.device,
        reporter=reporter,
        monitor=experiment.primary_metric,
    )
    if trained.stopped_reason:
        raise _Stopped(trained.stopped_reason)
    reporter.log(
        "INFO",
        f"fit: {trained.epochs_trained} epochs in {time.perf_counter() - fit_started:.1f} s "
        f"({time.process_time() - fit_cpu:.1f} s CPU)",
    )
    check_stop()
    # The adapter caps threads during the fit only; evaluation and the input example predict too, and
    # uncapped OpenMP pools in two pool processes on two cores spin against each other (~4x slower).
    with threadpool_limits(limits=training_threads()):
        evaluation, signature, example = _evaluate_and_describe(
            run=run, df=df, data=data, trained=trained, experiment=experiment, dataset_version=version
        )
        plots = _evaluation_plots(trained=trained, data=data, reporter=reporter)
    val_metrics = json_safe(evaluation.get("val", {}))
    test_metrics = json_safe(evaluation.get("test", {}))
    primary = val_metrics.get(experiment.primary_metric)
    shown = f"{primary:.4g}" if isinstance(primary, (int, float)) else "n/a"
    reporter.log(
        "INFO",
        f"validation {experiment.primary_metric}={shown}; test: "
        + ", ".join(f"{k}={v:.4g}" for k, v in test_metrics.items() if isinstance(v, (int, float))),
    )

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
            local_dir=folder,
            prefix=f"runs/{run.pk}/attempt-{run.attempts}-{secrets.token_hex(4)}",
            extra={"run": run.pk, "framework": run.framework, "model_type": run.model_type},
        )
    reporter.log(
        "INFO",
        f"artifact committed at {committed.uri} (manifest sha256 {committed.sha256[:12]}, "
        f"{len(committed.manifest['files'])} files)",
    )
    return {
        "val_metrics": val_metrics,
        "test_metrics": test_metrics,
        "primary_metric_value": primary,
        "artifact_uri": committed.uri,
        "artifact_sha256": committed.sha256,
        "signature": signature,
        "plugin": plugin_provenance(adapter.model_type(run.model_type)),
        "evaluation": plots,
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
    signature = build_signature(
        data=data,
        preprocessor=data.preprocessor,
        trained=trained,
        experiment=experiment,
        dataset_version=dataset_version,
    )
    example = input_example(df=df, preprocessor=data.preprocessor, trained=trained, signature=signature, run=run)
    return evaluation, signature, example


def _finish_success(run: TrainingRun, fields: dict) -> TrainingRun:
    """SUCCEEDED and the registered version in one transaction, retried on a dropped connection."""
    from apps.training.services.registration import model_version_create_from_run

    tries = 0

    def finish():
        nonlocal tries
        tries += 1
        if tries > 1:  # the commit may have gone through and only its answer been lost
            done = TrainingRun.objects.filter(
                pk=run.pk, status=RunStatus.SUCCEEDED, attempts=run.attempts, artifact_uri=fields["artifact_uri"]
            ).first()
            done = (
                done
                or TrainingRun.objects.filter(
                    pk=run.pk,
                    attempts=run.attempts,
                    stop_reason__gt="",
                    status__in=(RunStatus.CANCELLED, RunStatus.PRUNED),
                ).first()
            )
            if done is not None:
                return done
        with transaction.atomic():
            # SUCCEEDED, or PRUNED / CANCELLED when a stop request landed after the last epoch.
            done = run_finish(run_id=run.pk, fields=fields, expected_attempt=run.attempts)
            if run.register_model and done.status == RunStatus.SUCCEEDED:
                version = model_version_create_from_run(run=done, name=run.experiment.model_name, user=run.created_by)
                run_log_append(
                    run_id=run.pk,
                    level="INFO",
                    attempt=run.attempts,
                    message=f"registered as {version.registered_model.name} version {version.version}",
                )
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


def requeue_or_fail_after_db_loss(run: TrainingRun, exc: Exception, extra: dict) -> bool:
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
                    run_id=run.pk,
                    to=RunStatus.FAILED,
                    reason=f"{lost}; giving up after {current.attempts} attempts"[:4000],
                    fields={
                        "error_message": f"database unavailable: {lost}; gave up after {current.attempts} of "
                        f"{current.max_attempts} attempts."[:4000],
                        "traceback": traceback.format_exc()[-20000:],
                    }
                    | extra,
                )
            else:
                task_id = str(uuid.uuid4())
                run_status_transition(
                    run_id=run.pk,
                    to=RunStatus.QUEUED,
                    reason=f"{lost}; requeued"[:4000],
                    fields={"celery_task_id": task_id},
                )
                transaction.on_commit(lambda: dispatch_or_fail(run.pk, current.queue, task_id))

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
    from apps.frameworks import NoGpuAvailable
    from apps.training.reporter import RunReporter, RunWatcher, RunWriter

    # The pool process's connection may have been dropped since its last task.
    run = db_retrying(lambda: claim_attempt(run_id=run_id, celery_task_id=celery_task_id), what=f"run {run_id} claim")
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
                    logger.warning(
                        "run %s attempt %s was superseded; stopping without a status change", run.pk, attempt
                    )
                else:
                    reporter.log("WARNING", f"stopped: {stop.reason}")
                    reporter.flush()
                    _safe_transition(
                        run,
                        to=stopped_status(stop.reason),
                        reason=f"stopped ({stop.reason})",
                        fields={"stop_reason": stop.reason} | cpu(),
                    )
            except DB_CONNECTION_ERRORS as exc:  # still no database after the retries
                logger.exception("training run %s lost the database", run.pk)
                writer.flush(timeout=float(conf.get("TRAINING_DB_RETRY_SECONDS")))
                if not requeue_or_fail_after_db_loss(run, exc, cpu()):
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
                _safe_transition(
                    run,
                    to=RunStatus.FAILED,
                    reason=message[:500],
                    fields={"error_message": message[:4000], "traceback": traceback.format_exc()[-20000:]} | cpu(),
                )
    finally:
        live.flush(timeout=5)
        sys.setswitchinterval(switch_interval)
    return db_retrying(lambda: TrainingRun.objects.select_related("experiment").get(pk=run.pk), what=f"run {run.pk}")
