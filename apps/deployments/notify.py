"""Telling web processes and dashboards that a deployment changed, after the change commits, and
hearing back from the web processes once they serve it.

Web processes: the deployment's routing-table generation goes into a Redis hash that every process
reads every `DEPLOYMENTS_GENERATION_POLL_S` (apps.deployments.serving.state). A Lua script keeps the
largest generation, so two commits whose callbacks run out of order cannot move it backwards. Redis
is only the fast path of the news: each process also reads the generations of the deployments it
serves from the database every `DEPLOYMENTS_GENERATION_DB_CHECK_S`, so a publish that Redis lost
(restarted, or unreachable at commit) still arrives, and is published again for the others.

Acknowledgements: each web process keeps, per deployment, one field of the hash
`mlops:deployments:ack:<name>` (its process id → the generation it serves, when it started serving
it, and a heartbeat). A process writes a generation there only after it swapped the new table in
*and* every request it had routed with the old one was answered, so once a process acknowledged a
generation, it never again answers with a version that generation retired. A field whose heartbeat
is older than `DEPLOYMENTS_ACK_TTL_S` belongs to a process that is gone and is not counted.
`routing_acknowledgement` reads "acknowledged by k of n".

Dashboards: a `deployment.changed` message to the Channels group `deployments`.
"""

import json
import logging
import os
import socket
import time

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from apps.core.live import DEPLOYMENTS_GROUP
from apps.core.redis_client import get_redis

logger = logging.getLogger(__name__)

GENERATION_KEY = "mlops:deployments:generation"
ACK_KEY_PREFIX = "mlops:deployments:ack:"
# An acknowledgement hash outlives its deployment by a day at most.
ACK_KEY_EXPIRE_S = 24 * 3600
GROUP = DEPLOYMENTS_GROUP
# Value "<stamp>:<generation>": the stamp (the deployment's creation time) tells a recreated
# deployment, or a database restored under a Redis that remembers the old one, from the one a
# process serves; within one stamp the generation only ever grows.
_PUBLISH = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local sep = string.find(current, ':', 1, true)
  if sep and string.sub(current, 1, sep - 1) == ARGV[2] and tonumber(string.sub(current, sep + 1)) >= tonumber(ARGV[3]) then
    return current
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3])
return ARGV[2] .. ':' .. ARGV[3]
"""


def deployment_stamp(created_at) -> str:
    return str(int(created_at.timestamp() * 1_000_000))


def parse_generation(value: bytes | str) -> tuple[str, int] | None:
    text = value.decode() if isinstance(value, bytes) else value
    stamp, sep, generation = text.partition(":")
    if not sep:
        return None
    try:
        return stamp, int(generation)
    except ValueError:
        return None


def publish_generation(name: str, stamp: str, generation: int) -> None:
    try:
        get_redis().eval(_PUBLISH, 1, GENERATION_KEY, name, stamp, int(generation))
    except redis.RedisError:
        # Processes keep serving their current table; they pick the change up once Redis is back
        # and the next change publishes again.
        logger.exception("could not publish routing generation %s of %s", generation, name)


def push_changed(name: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(GROUP, {"type": "deployment.changed", "deployment": name})
    except Exception:  # a dashboard push must never undo or fail the change itself
        logger.exception("could not push deployment.changed for %s", name)


def after_commit(name: str, generation: tuple[str, int] | None = None) -> None:
    """On commit: publish the new (stamp, generation) when routing changed, and tell the dashboards."""

    def send():
        if generation is not None:
            publish_generation(name, *generation)
        push_changed(name)

    transaction.on_commit(send)


def poll_interval_s() -> float:
    return float(getattr(settings, "DEPLOYMENTS_GENERATION_POLL_S", 0.5))


def rebuild_timeout_s() -> float:
    """How long a process may keep answering with its old table while it builds the new one."""
    return float(getattr(settings, "DEPLOYMENTS_REBUILD_TIMEOUT_S", 10.0))


def database_check_s() -> float:
    return float(getattr(settings, "DEPLOYMENTS_GENERATION_DB_CHECK_S", 5.0))


def ack_ttl_s() -> float:
    return float(getattr(settings, "DEPLOYMENTS_ACK_TTL_S", 10.0))


def propagation_bound_s() -> float:
    """After a routing change is published, every web process answers with the new table or refuses
    (503) within this many seconds: it hears of it within one poll and then has the rebuild timeout.
    A change that Redis lost is heard of within `database_check_s()` instead of the poll."""
    return poll_interval_s() + rebuild_timeout_s()


def ack_key(name: str) -> str:
    return f"{ACK_KEY_PREFIX}{name}"


def process_id() -> str:
    """This process among the web processes: host and pid (read when called, so a forked worker
    gets its own)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def acknowledge(process: str, records: dict[str, dict], *, now: float | None = None) -> None:
    """Writes this process's state per deployment ({name: {"stamp", "generation", "acked_at",
    "refusing"}}), with the heartbeat `seen_at` = now. Best effort: Redis down means staff see the
    process drop out of the count, never a wrong acknowledgement."""
    if not records:
        return
    now = time.time() if now is None else now
    try:
        pipe = get_redis().pipeline(transaction=False)
        for name, record in records.items():
            pipe.hset(ack_key(name), process, json.dumps({**record, "seen_at": now}, separators=(",", ":")))
            pipe.expire(ack_key(name), ACK_KEY_EXPIRE_S)
        pipe.execute()
    except redis.RedisError:
        logger.warning("could not record the routing acknowledgements of %s", process)


def withdraw(process: str, names) -> None:
    """A process that stops serving a deployment (deleted, or the process resets) leaves its count."""
    try:
        pipe = get_redis().pipeline(transaction=False)
        for name in names:
            pipe.hdel(ack_key(name), process)
        pipe.execute()
    except redis.RedisError:
        pass


def _live_records(name: str, now: float) -> dict[str, dict]:
    """The acknowledgement records of live processes; those whose heartbeat stopped are removed."""
    live, dead = {}, []
    for field, value in get_redis().hgetall(ack_key(name)).items():
        try:
            record = json.loads(value)
            fresh = now - float(record["seen_at"]) <= ack_ttl_s()
        except (ValueError, KeyError, TypeError):
            fresh = False
        if fresh:
            live[field.decode() if isinstance(field, bytes) else field] = record
        else:
            dead.append(field)
    if dead:
        try:
            get_redis().hdel(ack_key(name), *dead)
        except redis.RedisError:
            pass
    return live


def _serves(record: dict, stamp: str, generation: int) -> bool:
    return record.get("stamp") == stamp and int(record.get("generation", -1)) >= generation


def routing_acknowledgement(*, name: str, stamp: str, generation: int, now: float | None = None) -> dict:
    """How far generation `generation` of the deployment (incarnation `stamp`) has reached:
    {"generation", "acknowledged" (k), "processes" (n, the live web processes serving the
    deployment), "complete" (k == n), "bound_s", "lagging": [{"process", "generation", "refusing"}]}.
    Raises redis.RedisError when Redis cannot be read."""
    live = _live_records(name, time.time() if now is None else now)
    lagging = [
        {"process": process, "generation": record.get("generation"), "refusing": bool(record.get("refusing"))}
        for process, record in sorted(live.items())
        if not _serves(record, stamp, generation)
    ]
    return {
        "generation": generation,
        "acknowledged": len(live) - len(lagging),
        "processes": len(live),
        "complete": not lagging,
        "bound_s": propagation_bound_s(),
        "lagging": lagging,
    }


def acknowledgement_times(*, name: str, stamp: str, generation: int, now: float | None = None) -> dict[str, float]:
    """{process: epoch seconds when it started serving `generation` (or a later one)} for the live
    processes that do."""
    live = _live_records(name, time.time() if now is None else now)
    return {
        process: float(record["acked_at"]) for process, record in live.items() if _serves(record, stamp, generation)
    }
