"""Prediction logs off the request path, durable through Redis restarts and database blips.

The request path appends each answer's line to this process's buffer (`prediction_log_push`: a
deque append under a lock, no I/O); one writer thread per process inserts batches straight into
PostgreSQL (apps.monitoring.services.logwriter, which says what each fault costs). Redis only
carries what the writers report: the Prometheus counters (`COUNT_KEY`, `LATENCY_SUM_KEY`, summed in
the process and sent by its writer) and each writer's progress (`WRITERS_KEY`), which lets a reader
in another process wait until the answers served before it asked are in the table
(`prediction_logs_flush`).

Until this release a line crossed Redis (RPUSH to `PENDING_KEY`, drained by the beat task), and a
Redis restart lost the lines not yet drained. `prediction_logs_flush` still drains that list, for
lines an older web process may leave during a rolling upgrade.

A line PostgreSQL refuses (it should not happen: `log_entry` strips what PostgreSQL cannot store)
is dropped with an error log rather than retried: retrying would stop every line behind it forever.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.db import DataError, IntegrityError, transaction

from ..models import PredictionLog
from apps.core.redis_client import get_redis
from .logwriter import LogWriter
from ..drift import add_feature_bins
from ..rollups import minute_of
from .rollups import rollup_sums_for_logs, rollups_add

logger = logging.getLogger(__name__)

PENDING_KEY = "mlops:predlog:pending"  # the pre-writer design's list; drained, never written
COUNT_KEY = "mlops:predlog:count"
LATENCY_SUM_KEY = "mlops:predlog:latency_ms_sum"
FLUSH_LOCK_KEY = "mlops:predlog:flush-lock"
WRITERS_KEY = "mlops:predlog:writers"  # {writer id: {"c": caught up, "p": pending, "d": dropped, "t": reported at}}
COUNTER_SEPARATOR = "\t"
WRITER_STALE_S = 5.0  # a writer silent this long is gone (SIGKILLed) or stuck: readers stop waiting for it
WRITER_FORGET_S = 60.0


def log_entry(
    *,
    request_id: str,
    deployment_id: int,
    version_id: int,
    shadow: bool,
    status: str,
    latency_ms: float,
    n_rows: int,
    inputs_hash: str,
    output: list,
    error: str = "",
    routing_key_hash: str = "",
    features: dict | None = None,
    served_at: float | None = None,
    probabilities: list | None = None,
) -> dict:
    """The line one answer becomes (short keys: it waits in memory, then goes to PostgreSQL as JSON).

    The error text quotes the client's field names and values verbatim, and PostgreSQL refuses NUL
    in text and jsonb and NaN/Infinity in jsonb: those are replaced here, so the line can be stored.
    `probabilities` (a classifier's, one row per prediction) are only in the line when given; they
    are stored as they are, since the serving path refuses a model answering non-finite ones.
    """
    entry = {
        "r": request_id,
        "d": deployment_id,
        "v": version_id,
        "s": int(shadow),
        "st": status,
        "l": round(latency_ms, 4),
        "n": n_rows,
        "h": inputs_hash,
        "o": storable(output),
        "e": error[:2000].replace("\x00", "\ufffd"),
        "k": routing_key_hash,
        "f": storable(features or {}),
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
    """Queues answers for this process's writer and counts them; `labels[i]` is (deployment name,
    version) of `entries[i]`, the Prometheus labels. No I/O: safe on the event loop."""
    fields = [
        counter_field(deployment, version, entry["st"], bool(entry["s"]))
        for entry, (deployment, version) in zip(entries, labels)
    ]
    process_writer().push(entries, fields)


_writer: LogWriter | None = None
_writer_id = ""
_writer_lock = threading.Lock()


def process_writer() -> LogWriter:
    """This process's writer (created on first use; its thread starts with the first line)."""
    global _writer, _writer_id
    writer = _writer
    if writer is None:
        with _writer_lock:
            writer = _writer
            if writer is None:
                _writer_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
                writer = LogWriter(
                    # Its own id bound in: a writer outliving its replacement (a test's, after a timed-out
                    # close) must not report under the new one's name.
                    store=logs_store,
                    report=functools.partial(_report, _writer_id),
                    capacity=int(getattr(settings, "PREDICTION_LOG_BUFFER_MAX", 50_000)),
                    batch_max=int(getattr(settings, "PREDICTION_LOG_BATCH_MAX", 1000)),
                    shutdown_s=float(getattr(settings, "PREDICTION_LOG_SHUTDOWN_S", 10)),
                    orphan_grace_s=float(getattr(settings, "PREDICTION_LOG_ORPHAN_GRACE_S", 30)),
                )
                _writer = writer
    return writer


def prediction_logs_close(timeout: float | None = None) -> int:
    """Stops this process's writer once it has stored what is left (up to PREDICTION_LOG_SHUTDOWN_S);
    returns the lines it could not store. Called at exit (atexit: management
    commands) and on ASGI lifespan shutdown (uvicorn, which ends a SIGTERMed process by the signal
    itself, so no atexit handler runs there)."""
    return _writer.close(timeout) if _writer is not None else 0


async def prediction_logs_lifespan(scope, receive, send) -> None:
    """The ASGI lifespan protocol: on shutdown, after the server has answered its last request,
    the writer stores what is left before the process exits."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await asyncio.get_running_loop().run_in_executor(None, prediction_logs_close)
            await send({"type": "lifespan.shutdown.complete"})
            return


def forget_process_writer() -> None:
    """The next line starts a new writer. A forked child starts with an empty buffer of its own (the
    lines it inherited are the parent's, which stores them); tests start one per test."""
    global _writer, _writer_lock
    _writer = None
    _writer_lock = threading.Lock()


os.register_at_fork(after_in_child=forget_process_writer)
# Whatever writer the process has at exit (a forked child's own, never the parent's, whose lock the
# fork may have copied held); a no-op when the lifespan shutdown closed it already.
atexit.register(prediction_logs_close)


def _report(writer_id: str, counters: dict, progress: dict | None) -> None:
    pipe = get_redis().pipeline(transaction=False)
    for field, (count, latency_sum) in counters.items():
        pipe.hincrby(COUNT_KEY, field, count)
        pipe.hincrbyfloat(LATENCY_SUM_KEY, field, latency_sum)
    if progress is None:
        pipe.hdel(WRITERS_KEY, writer_id)
    else:
        pipe.hset(WRITERS_KEY, writer_id, json.dumps(progress, separators=(",", ":")))
        pipe.expire(WRITERS_KEY, int(WRITER_FORGET_S))
    pipe.execute()


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


WRITER_LOCK_TIMEOUT = "500ms"
REFUSED = (DataError, IntegrityError, KeyError, TypeError, ValueError)  # a bad line, not a database fault


def logs_store(entries: list[dict], *, background: bool = False) -> list[dict]:
    """Inserts lines in the calling thread's connection (and transaction); returns the lines whose
    deployment or model version that connection cannot see, for the caller to hold or drop.

    `background` (the writer thread): its lock waits are bounded by WRITER_LOCK_TIMEOUT (a lock
    error is a database error: the batch is kept and retried). Below PostgreSQL's deadlock_timeout,
    so when the insert's table locks meet a TRUNCATE or other DDL in the opposite order, the writer
    gives way and retries instead of the other statement being chosen as the deadlock victim.
    The visibility check and the insert share one transaction, so no deployment or version it saw
    can be truncated away before the insert.

    The one place lines become rows, and the per-minute rollups are added right after the insert,
    in the same transaction, from the rows the INSERT created (RETURNING): a batch retried after an
    unacknowledged commit comes again and adds nothing, and a rollup never counts a row that did
    not commit.
    """
    lines = []
    for entry in entries:
        try:
            lines.append((int(entry["d"]), int(entry["v"]), entry))
        except (KeyError, TypeError, ValueError):
            logger.error("dropping a malformed prediction log line: %.300s", entry)
    if not lines:
        return []
    with transaction.atomic():
        connection = transaction.get_connection()
        postgres = connection.vendor == "postgresql"
        # A deployment deleted since the request would make the whole batch fail on its foreign key.
        deployments, versions = _visible(
            connection, {d for d, _, _ in lines}, {v for _, v, _ in lines}, lock_timeout=background and postgres
        )
        kept = [entry for d, v, entry in lines if d in deployments and v in versions]
        unseen = [entry for d, v, entry in lines if not (d in deployments and v in versions)]
        if kept:
            insert = _insert_postgres if postgres else _insert_orm
            created = []
            try:
                with transaction.atomic():
                    created = insert(kept)
            except REFUSED:
                # One line PostgreSQL refuses must not hold back the others: store them one by one.
                for entry in kept:
                    try:
                        with transaction.atomic():
                            created += insert([entry])
                    except REFUSED as exc:
                        logger.error(
                            "dropping a prediction log line the database refuses (%s): request %s, version %s",
                            str(exc).strip(),
                            entry.get("r"),
                            entry.get("v"),
                        )
            sums = rollup_sums_for_logs(row[:5] for row in created)
            add_feature_bins(sums, _drift_rows(created, kept))
            rollups_add(sums, connection=connection)
    return unseen


def _drift_rows(created: list[tuple], entries: list[dict]):
    """(deployment, version, minute, features) of the created OK rows, for the drift bins."""
    by_key = {(str(entry["r"]).lower(), int(entry["v"])): entry for entry in entries}
    for deployment_id, version_id, served_at, status, _, request_id in created:
        entry = by_key.get((str(request_id).lower(), version_id))
        if status == "ok" and entry is not None and entry.get("f"):
            yield deployment_id, version_id, minute_of(served_at), entry["f"]


def _visible(connection, deployment_ids: set, version_ids: set, *, lock_timeout: bool) -> tuple[set, set]:
    """Which of these deployments and model versions the connection sees (one round trip on
    PostgreSQL, where the writer's lock timeout is set in the same statement)."""
    from apps.registry.models import ModelVersion

    # The logs' deployment table, through the foreign key: monitoring imports no app above it.
    Deployment = PredictionLog._meta.get_field("deployment").related_model

    if connection.vendor != "postgresql":
        return (
            set(Deployment.objects.filter(pk__in=deployment_ids).values_list("pk", flat=True)),
            set(ModelVersion.objects.filter(pk__in=version_ids).values_list("pk", flat=True)),
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT CASE WHEN %s THEN set_config('lock_timeout', %s, true) END, "
            f'(SELECT array_agg("{Deployment._meta.pk.column}") FROM "{Deployment._meta.db_table}" '
            f'WHERE "{Deployment._meta.pk.column}" = ANY(%s)), '
            f'(SELECT array_agg("{ModelVersion._meta.pk.column}") FROM "{ModelVersion._meta.db_table}" '
            f'WHERE "{ModelVersion._meta.pk.column}" = ANY(%s))',
            [lock_timeout, WRITER_LOCK_TIMEOUT, list(deployment_ids), list(version_ids)],
        )
        _, deployments, versions = cursor.fetchone()
    return set(deployments or ()), set(versions or ())


def _insert_sql() -> str:
    column = {f.name: f.column for f in PredictionLog._meta.concrete_fields}
    values = {
        "request_id": "(x->>'r')::uuid",
        "deployment": "(x->>'d')::bigint",
        "model_version": "(x->>'v')::bigint",
        "shadow": "(x->>'s') IN ('1', 'true')",
        "status": "x->>'st'",
        "error": "coalesce(x->>'e', '')",
        "latency_ms": "(x->>'l')::double precision",
        "n_rows": "(x->>'n')::integer",
        "inputs_hash": "x->>'h'",
        "output": "coalesce(x->'o', '[]')",
        "routing_key_hash": "coalesce(x->>'k', '')",
        "features": "coalesce(x->'f', '{}')",
        "probabilities": "nullif(x->'p', 'null')",
        "served_at": "to_timestamp((x->>'t')::double precision)",
    }
    return (
        f'INSERT INTO "{PredictionLog._meta.db_table}" ({", ".join(chr(34) + column[n] + chr(34) for n in values)}) '
        f"SELECT {', '.join(values.values())} FROM jsonb_array_elements(%s::jsonb) AS x ON CONFLICT DO NOTHING "
        f'RETURNING "{column["deployment"]}", "{column["model_version"]}", "{column["served_at"]}", '
        f'"{column["status"]}", "{column["latency_ms"]}", "{column["request_id"]}"'
    )


_INSERT_SQL: str | None = None


def _insert_postgres(entries: list[dict]) -> list[tuple]:
    # One statement and one JSON document for the batch: PostgreSQL unpacks the lines, so the web
    # process spends a json.dumps per line here instead of building a model instance and its
    # parameters (measured in bench/bench_prediction_log.py). One dumps per line, not one for the
    # list: a C call holds the GIL throughout, and the event loop serving requests needs it back
    # within the switch interval, not after a whole batch.
    global _INSERT_SQL
    if _INSERT_SQL is None:
        _INSERT_SQL = _insert_sql()
    document = "[" + ",".join([json.dumps(entry, separators=(",", ":")) for entry in entries]) + "]"
    with transaction.get_connection().cursor() as cursor:
        cursor.execute(_INSERT_SQL, [document])
        return cursor.fetchall()  # (deployment, version, served_at, status, latency, request id) of the rows it created


def _insert_orm(entries: list[dict]) -> list[tuple]:
    """Other databases (SQLite for `make run` without DATABASE_URL). SQLite runs one writing
    transaction at a time (IMMEDIATE), so the rows already stored cannot change under the check."""
    rows = {(uuid.UUID(entry["r"]), int(entry["v"])): _model(entry) for entry in entries}
    stored = set()
    for request_id, version_id in PredictionLog.objects.filter(request_id__in={r for r, _ in rows}).values_list(
        "request_id", "model_version_id"
    ):
        stored.add((request_id, version_id))
    new = [row for key, row in rows.items() if key not in stored]
    PredictionLog.objects.bulk_create(new, batch_size=1000)
    return [
        (row.deployment_id, row.model_version_id, row.served_at, row.status, row.latency_ms, row.request_id)
        for row in new
    ]


def prediction_logs_flush(*, batch_size: int = 2000, wait_s: float = 10.0) -> int:
    """After it returns, the answers served before the call are in PostgreSQL: this process's own
    (stored here, in the caller's thread and transaction) and, as far as Redis can tell, every other
    live process's (waited for, up to `wait_s`). Returns how many lines this call stored.

    `wait_s=0` (the beat task) waits for nothing: it stores what this process has that its writer
    is not already inserting, and drains the old Redis list. A database error is raised with the
    lines kept; Redis being down only limits what is known about the other processes.
    """
    since = time.time()
    deadline = time.monotonic() + wait_s
    moved = 0
    if _writer is not None:
        moved += _writer.flush(wait_s=wait_s, batch_max=batch_size)
    try:
        moved += _legacy_drain(batch_size=batch_size, wait_s=max(0.0, deadline - time.monotonic()))
        if wait_s > 0:
            behind = _writers_behind(since=since, deadline=deadline)
            if behind:
                logger.warning(
                    "prediction logs of %d other process(es) not yet stored after %.1f s: %s",
                    len(behind),
                    wait_s,
                    ", ".join(sorted(behind)),
                )
    except redis.RedisError as exc:
        logger.warning("prediction log flush: Redis unavailable (%s); other processes' writers not awaited", exc)
    return moved


def prediction_logs_pending(*, wait_s: float = 1.0) -> int:
    """Answers served before the call and not yet known to be in PostgreSQL: this process's
    unstored lines, the old Redis list, and for each other live writer that has not reported
    catching up with the call (within `wait_s`) its pending count, at least 1."""
    since = time.time()
    pending = _writer.pending() if _writer is not None else 0
    try:
        pending += int(get_redis().llen(PENDING_KEY))
        behind = _writers_behind(since=since, deadline=time.monotonic() + wait_s)
    except redis.RedisError:
        return pending
    return pending + sum(max(1, int(progress.get("p", 0))) for progress in behind.values())


def prediction_log_writers() -> dict[str, dict]:
    """The live writers' last reports, this process's included ({writer id: {"c", "p", "d", "t"}}:
    caught-up time, lines pending, lines dropped since the process started, report time), for
    gauges; {} when Redis cannot say."""
    try:
        raw = get_redis().hgetall(WRITERS_KEY)
    except redis.RedisError:
        return {}
    now, live = time.time(), {}
    for writer_id, report in raw.items():
        try:
            progress = json.loads(report)
            if float(progress["t"]) >= now - WRITER_STALE_S:
                live[writer_id.decode()] = progress
        except (ValueError, KeyError, TypeError):
            continue
    return live


def _writers_behind(*, since: float, deadline: float) -> dict[str, dict]:
    """Other live writers whose reported progress has not reached `since` by `deadline` (polled)."""
    client = get_redis()
    while True:
        now = time.time()
        behind, forgotten = {}, []
        for raw_id, raw in client.hgetall(WRITERS_KEY).items():
            writer_id = raw_id.decode()
            if writer_id == _writer_id:
                continue  # this process's own: flushed directly
            try:
                progress = json.loads(raw)
                reported_at, caught_up = float(progress["t"]), float(progress["c"])
            except (ValueError, KeyError, TypeError):
                forgotten.append(raw_id)
                continue
            if reported_at < now - WRITER_STALE_S:
                if reported_at < now - WRITER_FORGET_S:
                    forgotten.append(raw_id)
                continue
            if caught_up < since:
                behind[writer_id] = progress
        if forgotten:
            client.hdel(WRITERS_KEY, *forgotten)
        if not behind or time.monotonic() >= deadline:
            return behind
        time.sleep(0.02)


def _legacy_drain(*, batch_size: int, wait_s: float) -> int:
    """Moves the lines an older web process left in the Redis list into PostgreSQL; returns how many.

    Under a Redis lock, batch by batch: LRANGE head → insert → LTRIM head (only while the lock is
    still ours), so a drainer that dies between insert and trim leaves the batch for the next one,
    whose insert is a no-op. Waits up to `wait_s` for another drainer (0: none).
    """
    client = get_redis()
    if not client.llen(PENDING_KEY):
        return 0
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
            _insert_or_drop(entries)
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


def _insert_or_drop(entries: list[dict]) -> None:
    unseen = logs_store(entries)
    if unseen:
        logger.warning("dropping %d prediction log(s) of deleted deployments or versions", len(unseen))


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
