"""Prediction logs off the request path.

The request path does one Redis round trip: RPUSH of the JSON line(s) plus the Prometheus counters,
pipelined. `prediction_logs_flush` (a beat task every few seconds, and before gates are evaluated or
feedback is matched) drains the list into PostgreSQL in batches under a Redis lock:

    LRANGE head → bulk_create(ignore_conflicts) → LTRIM head (only while the lock is still ours)

A flusher that dies between the insert and the trim leaves the batch in the list; the next flusher
inserts it again and the unique (request_id, model_version) makes that a no-op, so a line is never
lost and never counted twice. If Redis cannot take the line, it is written to the database directly.

A line PostgreSQL refuses (it should not happen: `log_entry` strips what PostgreSQL cannot store)
is dropped with an error log rather than retried: retrying would stop every line behind it forever.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import redis
from django.db import DataError, IntegrityError, connections, transaction

from ..models import PredictionLog
from ..redis_client import get_redis

logger = logging.getLogger(__name__)

PENDING_KEY = "mlops:predlog:pending"
COUNT_KEY = "mlops:predlog:count"
LATENCY_SUM_KEY = "mlops:predlog:latency_ms_sum"
FLUSH_LOCK_KEY = "mlops:predlog:flush-lock"
COUNTER_SEPARATOR = "\t"


def log_entry(*, request_id: str, deployment_id: int, version_id: int, shadow: bool, status: str, latency_ms: float,
              n_rows: int, inputs_hash: str, output: list, error: str = "", routing_key_hash: str = "",
              features: dict | None = None, served_at: float | None = None, probabilities: list | None = None) -> dict:
    """The JSON line one answer becomes (short keys: it crosses Redis on every request).

    The error text quotes the client's field names and values verbatim, and PostgreSQL refuses NUL
    in text and jsonb and NaN/Infinity in jsonb: those are replaced here, so the line can be stored.
    `probabilities` (a classifier's, one row per prediction) are only in the line when given; they
    are stored as they are, since the serving path refuses a model answering non-finite ones.
    """
    entry = {
        "r": request_id, "d": deployment_id, "v": version_id, "s": int(shadow), "st": status, "l": round(latency_ms, 4),
        "n": n_rows, "h": inputs_hash, "o": storable(output), "e": error[:2000].replace("\x00", "\ufffd"),
        "k": routing_key_hash, "f": storable(features or {}),
        "t": served_at if served_at is not None else time.time(),
    }
    if probabilities is not None:
        entry["p"] = probabilities
    return entry


def storable(value):
    """`value` as PostgreSQL's jsonb takes it: NUL in strings → U+FFFD, NaN/±Infinity → null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    if isinstance(value, dict):
        return {storable(str(k)): storable(v) for k, v in value.items()}
    return value


def counter_field(deployment: str, version: str, status: str, shadow: bool) -> str:
    return COUNTER_SEPARATOR.join((deployment, version, status, "1" if shadow else "0"))


def prediction_log_push(*, entries: list[dict], labels: list[tuple[str, str]]) -> None:
    """Queues answers for the flusher and counts them; `labels[i]` is (deployment name, version) of
    `entries[i]`, the Prometheus labels."""
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.rpush(PENDING_KEY, *[json.dumps(entry, separators=(",", ":")) for entry in entries])
        for entry, (deployment, version) in zip(entries, labels):
            pipe.hincrby(COUNT_KEY, counter_field(deployment, version, entry["st"], bool(entry["s"])), 1)
            pipe.hincrbyfloat(LATENCY_SUM_KEY, counter_field(deployment, version, entry["st"], bool(entry["s"])), entry["l"])
        pipe.execute()
    except redis.RedisError:
        logger.exception("prediction log buffer unavailable; writing %d log(s) directly", len(entries))
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            _insert_or_drop(entries)
        else:
            # The ASGI fast path calls this inside the event loop, where Django's ORM refuses to run.
            _insert_off_the_loop(entries)


_fallback_pool: ThreadPoolExecutor | None = None
_fallback_pending = 0
_fallback_lock = threading.Lock()
FALLBACK_QUEUE_LIMIT = 10_000


def _insert_or_drop(entries: list[dict]) -> None:
    """The direct write when Redis is down: the requests are already answered, so a failure here is
    logged and the lines dropped, never raised into the request."""
    try:
        _insert(entries)
    except Exception:
        logger.exception("dropping %d prediction log(s): neither Redis nor the database took them", len(entries))


def _insert_off_the_loop(entries: list[dict]) -> None:
    global _fallback_pool, _fallback_pending
    with _fallback_lock:
        if _fallback_pending >= FALLBACK_QUEUE_LIMIT:
            logger.error("dropping %d prediction log(s): %d already wait for the database", len(entries), _fallback_pending)
            return
        if _fallback_pool is None:
            _fallback_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predlog-fallback")
        _fallback_pending += len(entries)
    _fallback_pool.submit(_insert_in_thread, entries)


def _insert_in_thread(entries: list[dict]) -> None:
    global _fallback_pending
    try:
        _insert_or_drop(entries)
    finally:
        connections.close_all()  # this thread's own connection, not left open between outages
        with _fallback_lock:
            _fallback_pending -= len(entries)


def _model(entry: dict) -> PredictionLog:
    return PredictionLog(
        request_id=uuid.UUID(entry["r"]),
        deployment_id=entry["d"],
        model_version_id=entry["v"],
        shadow=bool(entry["s"]),
        status=entry["st"],
        error=entry.get("e") or "",
        latency_ms=float(entry["l"]),
        n_rows=int(entry["n"]),
        inputs_hash=entry["h"],
        output=entry.get("o") or [],
        routing_key_hash=entry.get("k") or "",
        features=entry.get("f") or {},
        probabilities=entry.get("p"),
        served_at=datetime.fromtimestamp(float(entry["t"]), tz=UTC),
    )


def _insert(entries: list[dict]) -> int:
    from apps.deployments.models import Deployment
    from apps.registry.models import ModelVersion

    models = []
    for entry in entries:
        try:
            models.append(_model(entry))
        except (KeyError, TypeError, ValueError):
            logger.error("dropping a malformed prediction log line: %.300s", entry)
    # A deployment deleted since the request would make the whole batch fail on its foreign key.
    deployments = set(Deployment.objects.filter(pk__in={m.deployment_id for m in models}).values_list("pk", flat=True))
    versions = set(ModelVersion.objects.filter(pk__in={m.model_version_id for m in models}).values_list("pk", flat=True))
    kept = [m for m in models if m.deployment_id in deployments and m.model_version_id in versions]
    if len(kept) != len(models):
        logger.warning("dropping %d prediction log(s) of deleted deployments or versions", len(models) - len(kept))
    try:
        with transaction.atomic():
            PredictionLog.objects.bulk_create(kept, ignore_conflicts=True, batch_size=1000)
    except (DataError, IntegrityError):
        # One line PostgreSQL refuses must not hold back the others: store them one by one.
        stored = 0
        for model in kept:
            try:
                with transaction.atomic():
                    PredictionLog.objects.bulk_create([model], ignore_conflicts=True)
                stored += 1
            except (DataError, IntegrityError) as exc:
                logger.error("dropping a prediction log PostgreSQL refuses (%s): request %s, version %s",
                             exc, model.request_id, model.model_version_id)
        return stored
    return len(kept)


def prediction_logs_flush(*, batch_size: int = 2000, wait_s: float = 10.0) -> int:
    """Moves every queued log line into PostgreSQL; returns how many lines it moved.

    Waits up to `wait_s` for another flusher to finish (0: return 0 at once when one is running).
    """
    client = get_redis()
    lock = client.lock(FLUSH_LOCK_KEY, timeout=120, blocking_timeout=wait_s if wait_s > 0 else None)
    if not lock.acquire(blocking=wait_s > 0):
        return 0
    moved = 0
    try:
        while True:
            raw = client.lrange(PENDING_KEY, 0, batch_size - 1)
            if not raw:
                break
            entries = []
            for line in raw:
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    logger.error("dropping an unreadable prediction log line: %.300r", line)
            _insert(entries)
            if not _trim_if_still_held(client, lock, len(raw)):
                # The lock expired during the insert and another flusher may be on this same batch: it
                # trims it (re-inserting is a no-op); trimming here too would drop lines behind it.
                logger.warning("the prediction log flush lock expired mid-batch; leaving the trim to its new holder")
                break
            moved += len(raw)
            lock.extend(120, replace_ttl=True)
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            logger.warning("the prediction log flush lock expired before the flush ended")
    return moved


# LTRIM only while the lock still holds this flusher's token (GET + LTRIM as one atomic step).
TRIM_IF_HELD = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    redis.call('ltrim', KEYS[2], tonumber(ARGV[2]), -1)
    return 1
end
return 0
"""


def _trim_if_still_held(client, lock, count: int) -> bool:
    return bool(client.eval(TRIM_IF_HELD, 2, FLUSH_LOCK_KEY, PENDING_KEY, lock.local.token, count))


def prediction_logs_pending() -> int:
    return int(get_redis().llen(PENDING_KEY))
