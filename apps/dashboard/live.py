"""The Channels groups the dashboard socket listens to, and the pushes this app makes itself."""

import threading
import time

from apps.core.live import ALERTS_GROUP, DASHBOARD_GROUP, DEPLOYMENTS_GROUP, RUNS_GROUP, STUDIES_GROUP

LISTENED_GROUPS = (DASHBOARD_GROUP, DEPLOYMENTS_GROUP, RUNS_GROUP, STUDIES_GROUP, ALERTS_GROUP)

# Tiny models finish epochs in milliseconds; dashboards need a few progress updates a second at most.
PROGRESS_MIN_INTERVAL_S = 0.25

_last_sent: dict[int, float] = {}
_lock = threading.Lock()


def progress_due(run_id: int, *, final: bool, now: float | None = None) -> bool:
    """Whether a run's progress should be pushed now (always for the final epoch)."""
    now = time.monotonic() if now is None else now
    with _lock:
        last = _last_sent.get(run_id)
        if not final and last is not None and now - last < PROGRESS_MIN_INTERVAL_S:
            return False
        _last_sent[run_id] = now
        if final:
            _last_sent.pop(run_id, None)
        return True
