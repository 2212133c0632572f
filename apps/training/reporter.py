"""What runs beside a training attempt: the heartbeat / stop watcher thread and the reporter the
framework adapters call (epoch metrics, log lines, should_stop)."""

import logging
import queue
import threading
import time

from django.db import connection

from . import conf
from .choices import RunStatus
from .models import TrainingRun
from .services.runs import db_reconnect, db_retrying, epoch_record, log_record, run_records_write
from .signals import run_epoch_completed

logger = logging.getLogger(__name__)

# Watchers of attempts executing in this process, so a stop requested here (e.g. a pruning
# receiver of run_epoch_completed) takes effect at the very next batch.
_active: dict[int, "RunWatcher"] = {}
_active_lock = threading.Lock()


def is_local_active(run_id: int) -> bool:
    with _active_lock:
        return run_id in _active


def local_stop(run_id: int, reason: str) -> None:
    with _active_lock:
        watcher = _active.get(run_id)
    if watcher is not None:
        watcher.request_stop(reason)


class RunWatcher:
    """A daemon thread that writes the attempt's heartbeat and polls for a stop request.

    should_stop() in the training loop only reads an attribute; all I/O happens here. If the run
    no longer belongs to this attempt (the reaper requeued it, another worker took over) the
    attempt is told to stop with reason "superseded".
    """

    def __init__(self, run_id: int, attempt: int):
        self.run_id = run_id
        self.attempt = attempt
        self.stop_reason: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"run-{run_id}-watcher", daemon=True)

    def __enter__(self):
        with _active_lock:
            _active[self.run_id] = self
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join(timeout=10)
        with _active_lock:
            if _active.get(self.run_id) is self:
                del _active[self.run_id]
        return False

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    def _loop(self):
        poll = float(conf.get("TRAINING_STOP_POLL_SECONDS"))
        beat_every = float(conf.get("TRAINING_HEARTBEAT_SECONDS"))
        last_beat = time.monotonic()  # the claim that started this attempt wrote the first heartbeat
        try:
            while not self._done.wait(poll):
                try:
                    now = time.monotonic()
                    if now - last_beat >= beat_every:
                        from django.utils import timezone

                        owned = TrainingRun.objects.filter(
                            pk=self.run_id, status=RunStatus.RUNNING, attempts=self.attempt
                        ).update(heartbeat_at=timezone.now())
                        last_beat = now
                        if not owned:
                            self.request_stop("superseded")
                    requested = (
                        TrainingRun.objects.filter(pk=self.run_id).values_list("stop_requested", flat=True).first()
                    )
                    if requested:
                        self.request_stop(requested)
                except Exception:  # a database blip must not kill the watcher; try again next tick
                    logger.exception("run %s watcher tick failed", self.run_id)
                    db_reconnect()  # a dropped connection never comes back by itself: open a new one
        finally:
            connection.close()


class RunWriter:
    """Write-behind for the training thread: log lines and epoch results are queued and a daemon
    thread stores them (batched, in order, one transaction per batch) and pushes them to viewers,
    so a slow database never slows training. run_epoch_completed is sent from this thread once the
    epoch is stored. flush() waits until everything queued so far is stored.

    sync=True writes in the calling thread instead (for callers inside an uncommitted transaction,
    which another connection could not see).
    """

    BATCH = 500

    def __init__(self, run: TrainingRun, attempt: int, *, sync: bool = False):
        self.run = run
        self.attempt = attempt
        self.sync = sync
        self._queue: queue.Queue = queue.Queue()
        self._thread = None if sync else threading.Thread(target=self._loop, name=f"run-{run.pk}-writer", daemon=True)

    def __enter__(self):
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=60)
        return False

    def put(self, record: tuple) -> None:
        if self.sync:
            self._write([record])
        else:
            self._queue.put(record)

    def flush(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._queue.unfinished_tasks

    def _loop(self):
        try:
            while True:
                batch = [self._queue.get()]
                while len(batch) < self.BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                records = [r for r in batch if r is not None]
                try:
                    if records:
                        self._write(records)
                finally:
                    for _ in batch:
                        self._queue.task_done()
                if len(records) < len(batch):
                    return
        finally:
            connection.close()

    def _write(self, records: list[tuple]) -> None:
        def write():
            return run_records_write(run=self.run, attempt=self.attempt, records=records)

        try:
            # A dropped connection is reopened and the batch retried (one transaction: stored once
            # or not at all); sync mode writes inside the caller's transaction and tries once.
            stored = write() if self.sync else db_retrying(write, what=f"run {self.run.pk} log writer")
        except Exception:
            # A batch that cannot be stored is logged, not fatal: the run's outcome is decided by its
            # final writes, which retry on their own.
            logger.exception("run %s: could not store %d log/epoch records", self.run.pk, len(records))
            if not self.sync:
                db_reconnect()
            return
        for epoch, metrics in stored:
            # A failing receiver (e.g. tuning bookkeeping) must not fail the training itself.
            for receiver, result in run_epoch_completed.send_robust(
                sender=TrainingRun, run=self.run, epoch=epoch, metrics=metrics
            ):
                if isinstance(result, Exception):
                    logger.error("run_epoch_completed receiver %r failed: %r", receiver, result)


class RunReporter:
    """The reporter handed to adapter.fit (see apps.frameworks.base.Reporter): log() and
    epoch() only enqueue, should_stop() only reads a flag, so the training loop does no I/O."""

    def __init__(self, run: TrainingRun, attempt: int, watcher: RunWatcher | None, writer: RunWriter):
        self.run = run
        self.attempt = attempt
        self.watcher = watcher
        self.writer = writer
        self.started = time.monotonic()

    def log(self, level: str, message: str) -> None:
        self.writer.put(log_record(level, message))

    def epoch(self, epoch: int, total_epochs: int, metrics: dict) -> None:
        elapsed = time.monotonic() - self.started
        remaining = max(int(total_epochs) - int(epoch), 0)
        record = epoch_record(epoch, total_epochs, metrics, elapsed / max(int(epoch), 1) * remaining)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in record[3].items() if isinstance(v, (int, float)))
        self.writer.put(record)
        self.writer.put(log_record("INFO", f"epoch {epoch}/{total_epochs}: {shown}"))

    def flush(self) -> None:
        if not self.writer.flush():
            logger.error("run %s: log/epoch records still queued after the flush timeout", self.run.pk)

    def should_stop(self) -> str | None:
        reason = self.watcher.stop_reason if self.watcher else None
        # Adapters know "cancelled" and "pruned"; losing ownership stops like a cancel.
        return "cancelled" if reason == "superseded" else reason
