"""Telling web processes and dashboards that a deployment changed, after the change commits.

Web processes: the deployment's routing-table generation goes into a Redis hash that every process
reads at most every ~0.5 s (apps.deployments.serving.state). The value only ever grows (a Lua
max), so two commits whose callbacks run out of order cannot move it backwards.
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
_SET_MAX = """
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return redis.call('HGET', KEYS[1], ARGV[1])
"""


def publish_generation(name: str, generation: int) -> None:
    try:
        get_redis().eval(_SET_MAX, 1, GENERATION_KEY, name, int(generation))
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


def after_commit(name: str, generation: int | None = None) -> None:
    """On commit: publish the new generation (when routing changed) and tell the dashboards."""

    def send():
        if generation is not None:
            publish_generation(name, generation)
        push_changed(name)

    transaction.on_commit(send)
