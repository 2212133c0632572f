"""The Channels groups every app pushes to (named once, here), and `publish`, which pushes messages to
them from synchronous code (the worker's training loop, services, views).

A per-process background thread owns one event loop and sends the queued messages one after the
other, so the training loop never waits on Redis and messages of a run arrive in the order they were
published. Callers publish only after their database write committed (transaction.on_commit), which is
what lets a late viewer replay from the database and then stream without a gap.
"""

import asyncio
import logging
import os
import queue
import threading
import time

logger = logging.getLogger(__name__)

DASHBOARD_GROUP = "dashboard"  # apps.dashboard: its own pushes
DEPLOYMENTS_GROUP = "deployments"  # apps.deployments.notify: {"type": "deployment.changed", "deployment": name}
RUNS_GROUP = "training-runs"  # apps.training: {"type": "run.status", "run": id, "status": ...}
STUDIES_GROUP = "tuning-studies"  # apps.tuning: {"type": "study.changed", "study": id}
ALERTS_GROUP = "alerts"  # apps.alerts.services: {"type": "alert.event", "event": id}


def run_group(run_id: int) -> str:
    """One run's page: its log lines, epochs and status."""
    return f"training-run-{run_id}"


class _Publisher:
    def __init__(self):
        self._lock = threading.Lock()
        self._pid = None
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None

    def _ensure_started(self) -> queue.Queue:
        # After a fork (Celery prefork children) the parent's thread does not exist: start our own.
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return self._queue
        with self._lock:
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                self._queue = queue.Queue()
                self._thread = threading.Thread(
                    target=self._loop, args=(self._queue,), name="channels-publisher", daemon=True
                )
                self._pid = os.getpid()
                self._thread.start()
        return self._queue

    @staticmethod
    def _loop(q: queue.Queue):
        from channels.layers import get_channel_layer

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        layer = get_channel_layer()
        while True:
            item = q.get()
            try:
                if item is None:
                    return
                group, message = item
                if layer is not None:
                    loop.run_until_complete(layer.group_send(group, message))
            except Exception:  # a viewer-side hiccup must never break training
                logger.exception("could not publish to channel group")
            finally:
                q.task_done()

    def send(self, group: str, message: dict) -> None:
        self._ensure_started().put((group, message))

    def flush(self, timeout: float = 5.0) -> bool:
        """Waits until everything published so far went out; True when the queue drained in time."""
        q = self._queue
        if q is None or self._pid != os.getpid():
            return True
        deadline = time.monotonic() + timeout
        while q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        return not q.unfinished_tasks


_publisher = _Publisher()


def publish(group: str, message: dict) -> None:
    _publisher.send(group, message)


def flush(timeout: float = 5.0) -> bool:
    return _publisher.flush(timeout)
