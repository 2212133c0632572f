"""A worker must survive a Redis restart with acks-late tasks in flight (issue 15, fault 1).

celery 5.7.0's consumer, on losing the broker, calls `connection.collect()` and then
`connection.close()`. When the consumer was blocked in BRPOP (a free pool slot), the first pass
cannot close the default channel (reading the pending BRPOP reply raises ConnectionError), and
`collect()` then detaches the transport from its connection (`transport.client = None`). The second
pass closes that channel for real; restoring its unacknowledged messages rebuilds a Redis pool from
`transport.client`, gets None, and raises AttributeError ("'NoneType' object has no attribute
'hostname'"). That is not a connection error, so celery treats it as fatal and the worker exits
for good. An ack of a task that finishes after the reconnect takes the same path.

The fix: a channel whose transport is detached answers with the transport's own connection error,
which every caller on those paths already handles (the close is ignored, the ack is logged as not
acknowledged). The unacknowledged message is not lost by this: it stays in Redis's unacked index
(when Redis kept it), is restored after the visibility timeout, and the run's database claim
drops the duplicate (apps/training/services/training_pipeline._claim).
"""

import logging

logger = logging.getLogger(__name__)


def apply() -> None:
    from kombu.transport import redis as kombu_redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    channel = kombu_redis.Channel
    if getattr(channel._connparams, "_detached_guard", False):
        return
    original = channel._connparams

    def _connparams(self, asynchronous=False):
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("kombu channel is detached from its connection (the broker went away)")
        return original(self, asynchronous=asynchronous)

    _connparams._detached_guard = True
    channel._connparams = _connparams
