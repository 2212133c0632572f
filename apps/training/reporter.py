"""What runs beside a training attempt: the heartbeat / stop watcher thread and the reporter the
framework adapters call (epoch metrics, log lines, should_stop)."""
import logging
import threading
import time

from django.db import close_old_connections, connection

from . import conf
from .choices import RunStatus
from .models import TrainingRun
from .services.runs import run_log_append, run_progress_record
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
                    close_old_connections()
        finally:
            connection.close()


class RunReporter:
    """The reporter handed to adapter.fit (see apps.training.frameworks.base.Reporter)."""

    def __init__(self, run: TrainingRun, attempt: int, watcher: RunWatcher | None):
        self.run = run
        self.attempt = attempt
        self.watcher = watcher
        self.started = time.monotonic()
        self.last_metrics: dict = {}

    def log(self, level: str, message: str) -> None:
        run_log_append(run_id=self.run.pk, level=level, message=message, attempt=self.attempt)

    def epoch(self, epoch: int, total_epochs: int, metrics: dict) -> None:
        elapsed = time.monotonic() - self.started
        remaining = max(int(total_epochs) - int(epoch), 0)
        eta = elapsed / max(int(epoch), 1) * remaining
        clean = run_progress_record(
            run=self.run, attempt=self.attempt, epoch=epoch, total_epochs=total_epochs, metrics=metrics,
            eta_seconds=eta,
        )
        self.last_metrics = clean
        shown = ", ".join(f"{k}={v:.4g}" for k, v in clean.items() if isinstance(v, (int, float)))
        self.log("INFO", f"epoch {epoch}/{total_epochs}: {shown}")
        # A failing receiver (e.g. a tuning bookkeeping error) must not fail the training itself.
        for receiver, result in run_epoch_completed.send_robust(
            sender=TrainingRun, run=self.run, epoch=int(epoch), metrics=clean
        ):
            if isinstance(result, Exception):
                logger.error("run_epoch_completed receiver %r failed: %r", receiver, result)

    def should_stop(self) -> str | None:
        reason = self.watcher.stop_reason if self.watcher else None
        # Adapters know "cancelled" and "pruned"; losing ownership stops like a cancel.
        return "cancelled" if reason == "superseded" else reason
