"""The one place a run's status, progress and log change. Every status change writes a RunEvent."""

import logging
import math
import time
from datetime import datetime

from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from apps.core import live
from apps.core.errors import StateConflict
from apps.training.choices import RUN_TERMINAL, RUN_TRANSITIONS, LogLevel, RunStatus, stopped_status
from apps.training.models import RunEpoch, RunEvent, RunLogLine, TrainingRun
from apps.training.signals import run_finished


logger = logging.getLogger(__name__)


class RunStateError(StateConflict):
    """A status change the run's current status does not allow (e.g. cancelling a finished run)."""


def json_safe(value):
    """Metrics as JSON the database accepts: numpy scalars to floats, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


# What a dropped or unreachable database looks like to Django (psycopg's errors mapped by Django).
DB_CONNECTION_ERRORS = (OperationalError, InterfaceError)


def db_reconnect() -> None:
    """Drops this thread's database connection so that the next query opens a fresh one. A no-op
    inside a transaction (closing would lose it; the caller's outer block must retry instead)."""
    if not connection.in_atomic_block:
        connection.close()


def db_retrying(fn, *, what: str, seconds: float | None = None):
    """Returns fn(); when the database connection is gone (a PgBouncer restart, a failover, an idle
    timeout, a short outage) reconnects and calls fn again with a growing pause, for up to
    `seconds` (TRAINING_DB_RETRY_SECONDS), then re-raises the last error.

    fn must be safe to call again: one transaction that either committed or did not. Inside an
    outer transaction there is nothing to reconnect to, so fn is called once."""
    from apps.training import conf

    if connection.in_atomic_block:
        return fn()
    budget = float(conf.get("TRAINING_DB_RETRY_SECONDS") if seconds is None else seconds)
    deadline = time.monotonic() + budget
    pause, tries = 0.1, 0
    while True:
        tries += 1
        try:
            return fn()
        except DB_CONNECTION_ERRORS as exc:
            db_reconnect()
            if time.monotonic() + pause > deadline:
                logger.error("%s: database still unavailable after %d tries in %.0f s: %s", what, tries, budget, exc)
                raise
            logger.warning(
                "%s: database connection lost (%s: %s); reconnecting (try %d)",
                what,
                type(exc).__name__,
                str(exc).strip()[:200],
                tries,
            )
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def status_message(run: TrainingRun) -> dict:
    return {
        "type": "run.status",
        "run": run.pk,
        "status": run.status,
        "attempt": run.attempts,
        "stop_reason": run.stop_reason,
        "error": run.error_message[:500],
        "experiment": run.experiment_id,
        "ts": _iso(timezone.now()),
    }


@transaction.atomic
def run_status_transition(
    *,
    run_id: int,
    to: str,
    reason: str = "",
    actor=None,
    fields: dict | None = None,
    expected_attempt: int | None = None,
    announce: bool = True,
) -> TrainingRun:
    """Moves run `run_id` to status `to` under a row lock, writes a RunEvent and, once committed,
    tells live viewers (groups training-run-<id> and training-runs) and sends run_finished for a
    terminal status.

    fields: other columns to set in the same write (metrics, error, artifact, ...).
    expected_attempt: refuse unless the run is still on this attempt (a superseded attempt must not
    finish a run another worker took over).
    announce=False: the caller calls run_status_announce later in the same transaction (so that log
    lines it writes first reach viewers before the terminal status does).
    """
    run = TrainingRun.objects.select_for_update().select_related("experiment").get(pk=run_id)
    if to not in RUN_TRANSITIONS[run.status]:
        raise RunStateError({"status": f"run {run_id} is {run.status}; it cannot become {to}."})
    if expected_attempt is not None and run.attempts != expected_attempt:
        raise RunStateError(
            {
                "status": f"run {run_id} is on attempt {run.attempts}, not {expected_attempt}; this attempt was superseded."
            }
        )
    now = timezone.now()
    previous = run.status
    changed = {"status": to, **(fields or {})}
    if to == RunStatus.RUNNING:
        changed.update(started_at=run.started_at or now, heartbeat_at=now)
    elif to == RunStatus.QUEUED:
        changed.update(queued_at=now, heartbeat_at=None)
    elif to in RUN_TERMINAL:
        changed["finished_at"] = now
        if to == RunStatus.SUCCEEDED:
            changed.update(progress=100.0, eta_seconds=0.0)
    for name, value in changed.items():
        setattr(run, name, value)
    # Only the columns this change owns: progress and log counters are written concurrently elsewhere.
    run.save(update_fields=[*changed, "updated_at"])
    RunEvent.objects.create(
        run=run,
        from_status=previous,
        to_status=to,
        attempt=run.attempts,
        reason=reason[:4000],
        actor=actor,
        created_at=now,
    )
    if announce:
        run_status_announce(run)
    return run


@transaction.atomic
def run_finish(*, run_id: int, fields: dict, expected_attempt: int) -> TrainingRun:
    """Ends a run that trained to the end: SUCCEEDED with `fields` (metrics, artifact, ...), unless a
    stop request reached the run after its last stop check (a pruner judging an earlier epoch late,
    or a cancel during evaluation). The request wins then: the run ends as a stopped run would,
    PRUNED or CANCELLED, without the artifact fields, and the caller discards the artifact; so a
    run that was asked to stop is never SUCCEEDED and a pruned trial's run always reads "Pruned".
    A request that comes after this write finds the run ended and is refused (RunStateError).

    Like run_status_transition(announce=False): the caller announces once its own lines are written.
    """
    locked = TrainingRun.objects.select_for_update().get(pk=run_id)
    stop = locked.stop_requested
    if not stop:
        return run_status_transition(
            run_id=run_id,
            to=RunStatus.SUCCEEDED,
            reason="training finished",
            fields=fields,
            expected_attempt=expected_attempt,
            announce=False,
        )
    kept = {key: fields[key] for key in ("cpu_seconds",) if key in fields}
    run = run_status_transition(
        run_id=run_id,
        to=stopped_status(stop),
        reason=f"stopped ({stop}) after its last epoch; the artifact is discarded",
        fields={"stop_reason": stop, **kept},
        expected_attempt=expected_attempt,
        announce=False,
    )
    run_log_append(
        run_id=run_id,
        level=LogLevel.WARNING,
        attempt=run.attempts,
        message=f"stopped ({stop}): the request came after the last epoch; nothing is kept or registered",
    )
    return run


def run_status_announce(run: TrainingRun) -> None:
    """Once the transaction commits: push the run's status to live viewers and, for a terminal
    status, send run_finished."""
    message = status_message(run)

    def after_commit():
        live.publish(live.run_group(run.pk), message)
        live.publish(live.RUNS_GROUP, message)
        if run.status in RUN_TERMINAL:
            for receiver, result in run_finished.send_robust(sender=TrainingRun, run=run):
                if isinstance(result, Exception):
                    logger.error("run_finished receiver %r failed for run %s: %r", receiver, run.pk, result)

    transaction.on_commit(after_commit)


def _level(level) -> str:
    level = level.upper() if isinstance(level, str) else LogLevel.INFO
    return level if level in LogLevel.values else LogLevel.INFO


def _allocate_seqs(run_id: int, count: int) -> int:
    """Reserves `count` sequence numbers for run `run_id`; returns the first.

    An UPDATE ... RETURNING on the run row: lines written by different processes (the worker, the
    reaper, a stop request) never share a number, and the row lock makes them commit in order."""
    table = connection.ops.quote_name(TrainingRun._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET log_seq = log_seq + %s WHERE id = %s RETURNING log_seq", [count, run_id])
        row = cursor.fetchone()
    if row is None:
        raise TrainingRun.DoesNotExist(f"no training run {run_id}")
    return row[0] - count + 1


def run_log_append(*, run_id: int, level: str, message: str, attempt: int = 0) -> RunLogLine:
    """Stores one log line under the run's next sequence number, then pushes it to live viewers."""
    emitted = timezone.now()  # the line's time is when it was emitted, before any I/O
    with transaction.atomic():
        line = RunLogLine.objects.create(
            run_id=run_id,
            seq=_allocate_seqs(run_id, 1),
            attempt=attempt,
            level=_level(level),
            message=str(message)[:20000],
            ts=emitted,
        )
        payload = log_message(line)
        transaction.on_commit(lambda: live.publish(live.run_group(run_id), payload))
    return line


def log_message(line: RunLogLine) -> dict:
    return {
        "type": "run.log",
        "run": line.run_id,
        "seq": line.seq,
        "level": line.level,
        "message": line.message,
        "ts": _iso(line.ts),
    }


def progress_message(run: TrainingRun, metrics: dict) -> dict:
    return {
        "type": "run.progress",
        "run": run.pk,
        "epoch": run.current_epoch,
        "total_epochs": run.total_epochs,
        "percent": round(run.progress, 2),
        "eta_seconds": None if run.eta_seconds is None else round(run.eta_seconds, 1),
        "metrics": metrics,
        "attempt": run.attempts,
    }


def log_record(level: str, message: str) -> tuple:
    return ("log", _level(level), str(message)[:20000], timezone.now())


def epoch_record(epoch: int, total_epochs: int, metrics: dict, eta_seconds: float | None) -> tuple:
    return ("epoch", int(epoch), max(int(total_epochs), 1), json_safe(dict(metrics)), eta_seconds, timezone.now())


def run_records_write(*, run: TrainingRun, attempt: int, records: list[tuple]) -> list[tuple[int, dict]]:
    """Stores a batch of log lines and epoch results (log_record / epoch_record) in one transaction,
    in their order, moves the run's progress to the newest epoch and, after commit, pushes them to
    live viewers in the same order. Returns [(epoch, metrics)] of the epochs stored.

    One UPDATE of the run row both reserves the lines' sequence numbers and records the progress:
    this is on the training loop's hot path (through the write-behind thread), once per epoch."""
    latest = None
    for record in records:
        if record[0] == "epoch":
            _, epoch, total, _, eta, _ = record
            latest = (epoch, total, max(0.0, min(100.0, 100.0 * epoch / total)), eta)
    count = sum(1 for r in records if r[0] == "log")
    lines, epochs, payloads, stored = [], [], [], []
    table = connection.ops.quote_name(TrainingRun._meta.db_table)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Progress and log lines need not wait for the WAL flush; status changes still do.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        if latest is not None:
            epoch, total, percent, eta = latest
            sql = (
                f"UPDATE {table} SET log_seq = log_seq + %s, current_epoch = %s, total_epochs = %s, progress = %s, "
                f"eta_seconds = %s, heartbeat_at = %s WHERE id = %s RETURNING log_seq"
            )
            params = [count, epoch, total, percent, eta, timezone.now(), run.pk]
        else:
            sql, params = f"UPDATE {table} SET log_seq = log_seq + %s WHERE id = %s RETURNING log_seq", [count, run.pk]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            raise TrainingRun.DoesNotExist(f"no training run {run.pk}")
        seq = row[0] - count + 1
        for record in records:
            if record[0] == "log":
                _, level, message, ts = record
                line = RunLogLine(run_id=run.pk, seq=seq, attempt=attempt, level=level, message=message, ts=ts)
                seq += 1
                lines.append(line)
                payloads.append(log_message(line))
            else:
                _, epoch, total, metrics, eta, ts = record
                epochs.append(
                    RunEpoch(
                        run_id=run.pk, attempt=attempt, epoch=epoch, total_epochs=total, metrics=metrics, created_at=ts
                    )
                )
                payloads.append(
                    {
                        "type": "run.progress",
                        "run": run.pk,
                        "epoch": epoch,
                        "total_epochs": total,
                        "percent": round(100.0 * epoch / total, 2),
                        "eta_seconds": None if eta is None else round(eta, 1),
                        "metrics": metrics,
                        "attempt": attempt,
                    }
                )
                stored.append((epoch, metrics))
        if lines:
            RunLogLine.objects.bulk_create(lines)
        if epochs:
            RunEpoch.objects.bulk_create(
                epochs,
                update_conflicts=True,
                unique_fields=["run", "attempt", "epoch"],
                update_fields=["total_epochs", "metrics", "created_at"],
            )
        if latest is not None:
            run.current_epoch, run.total_epochs, run.progress, run.eta_seconds = latest
        group = live.run_group(run.pk)
        # One group message per batch (the WebSocket consumer unpacks it into single frames): under
        # load, one Redis round trip per epoch instead of one per line keeps viewers current.
        message = payloads[0] if len(payloads) == 1 else {"type": "run.batch", "run": run.pk, "messages": payloads}
        transaction.on_commit(lambda: live.publish(group, message))
    return stored
