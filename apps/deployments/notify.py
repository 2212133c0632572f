"""Telling web processes and dashboards that a deployment changed, after the change commits.

Web processes: the deployment's routing-table generation goes into a Redis hash that every process
reads at most every ~0.5 s (apps.deployments.serving.state). A Lua script keeps the largest
generation, so two commits whose callbacks run out of order cannot move it backwards.
Dashboards: a `deployment.changed` message to the Channels group `deployments`.
"""
import logging

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from apps.monitoring.redis_client import get_redis

logger = logging.getLogger(__name__)

GENERATION_KEY = "mlops:deployments:generation"
GROUP = "deployments"
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
