"""How many requests each prediction batch held, for `/metrics` (`mlops_prediction_batch_requests`).

Every web worker counts its batches in memory and a background thread adds them to one Redis hash
once a second, so the histogram covers every process and no batch ever waits on Redis. Buckets are powers of two up to DEPLOYMENTS_BATCH_MAX_JOBS's default.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

logger = logging.getLogger(__name__)

KEY = "mlops:serving:batch-requests"
BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
PUSH_EVERY_S = 1.0


class BatchSizes:
    """Counts in memory on the inference thread; a daemon thread adds them to Redis every second
    (counts that Redis did not take are kept for the next try), so no batch waits on Redis."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._pusher: threading.Thread | None = None

    def observe(self, n: int) -> None:
        bucket = next((str(b) for b in BUCKETS if n <= b), "+Inf")
        with self._lock:
            for field, value in ((f"le:{bucket}", 1), ("count", 1), ("sum", n)):
                self._pending[field] = self._pending.get(field, 0) + value
            if self._pusher is None:
                self._pusher = threading.Thread(target=self._push_forever, name="batch-sizes", daemon=True)
                self._pusher.start()

    def _push_forever(self) -> None:
        while True:
            time.sleep(PUSH_EVERY_S)
            self.push_now()

    def push_now(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending and not self._push(pending):
            with self._lock:
                for field, value in pending.items():
                    self._pending[field] = self._pending.get(field, 0) + value

    @staticmethod
    def _push(pending: dict[str, int]) -> bool:
        from apps.core.redis_client import get_redis

        try:
            pipe = get_redis().pipeline(transaction=False)
            for field, value in pending.items():
                pipe.hincrby(KEY, field, value)
            pipe.execute()
            return True
        except redis.RedisError:
            logger.warning("batch-size counters unavailable; %d batches kept for the next try", pending.get("count", 0))
            return False


def read_histogram() -> tuple[list[tuple[str, int]], int, int] | None:
    """([(le, cumulative count)…], sum, count) across every process, or None when Redis is down."""
    from apps.core.redis_client import get_redis

    try:
        raw = {k.decode(): int(v) for k, v in get_redis().hgetall(KEY).items()}
    except redis.RedisError:
        return None
    cumulative, buckets = 0, []
    for bound in (*map(str, BUCKETS), "+Inf"):
        cumulative += raw.get(f"le:{bound}", 0)
        buckets.append((bound, cumulative))
    return buckets, raw.get("sum", 0), raw.get("count", 0)


batch_sizes = BatchSizes()
