"""Authentication and throttling for the prediction endpoints, built for their request rate.

Token checks are the same as everywhere (apps.core.authentication), but a verified token is
remembered in-process for DEPLOYMENTS_AUTH_CACHE_MS (1000 ms), roles included, so a busy client
costs one database query per second per process instead of one per prediction. A revoked or expired
token, or a removed role, stops working on every web process within that bound (at once in the
process that saved the change); 0 checks the database on every request.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from apps.core.authentication import ApiTokenAuthentication, authenticate_raw_token
from apps.core.models import hash_token
from apps.core.roles import may_predict

logger = logging.getLogger(__name__)

_MAX_CACHED_TOKENS = 10_000


_cache: dict[str, tuple[float, object, object]] = {}
_cache_lock = threading.Lock()
KEYWORDS = ("bearer", "token")


def split_authorization(header: bytes | str) -> str | None:
    """The raw token of an `Authorization: Bearer <token>` header, None when it is another scheme."""
    parts = (header.decode(errors="replace") if isinstance(header, bytes) else header).split()
    if not parts or parts[0].lower() not in KEYWORDS:
        return None
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
    return parts[1]


def cached_token_user(raw: str):
    """(user, token) from the cache without touching the database, or None."""
    hit = _cache.get(hash_token(raw))
    if hit is not None and hit[0] > time.monotonic() and not hit[2].is_expired:
        return hit[1], hit[2]
    return None


def verify_token(raw: str):
    """(user, token) for a raw token, checked in the database on a cache miss (roles loaded too);
    AuthenticationFailed when it is not valid."""
    hit = cached_token_user(raw)
    if hit is not None:
        return hit
    token = authenticate_raw_token(raw)
    user = token.user
    may_predict(user)  # computes and caches the roles on the user object
    ttl = settings.DEPLOYMENTS_AUTH_CACHE_MS / 1000
    if ttl > 0:
        with _cache_lock:
            if len(_cache) >= _MAX_CACHED_TOKENS:
                _cache.clear()
            _cache[hash_token(raw)] = (time.monotonic() + ttl, user, token)
    return user, token


class CachedApiTokenAuthentication(ApiTokenAuthentication):
    def authenticate(self, request):
        raw = split_authorization(get_authorization_header(request))
        return None if raw is None else verify_token(raw)

    @classmethod
    def forget_all(cls) -> None:
        with _cache_lock:
            _cache.clear()


def throttle_rate(scope: str) -> tuple[int | None, int]:
    """(requests, seconds) of a scope from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], read now."""
    try:
        rate = api_settings.DEFAULT_THROTTLE_RATES[scope]
    except KeyError:
        raise ImproperlyConfigured(f"No throttle rate set for scope {scope!r}.") from None
    return ScopedRateThrottle().parse_rate(rate)


class ThrottleRound:
    """One round of counting against a scope's fixed window, shared by the synchronous and the
    asyncio client: the same keys, increments and answer whichever client talks to Redis."""

    def __init__(self, scope: str, counts: dict):
        self.counts = counts
        self.limit, self.duration = throttle_rate(scope)
        now = time.time()
        window = int(now // self.duration)
        self.wait = (window + 1) * self.duration - now
        self.idents = list(counts)
        self.keys = [f"mlops:throttle:{scope}:{ident}:{window}" for ident in self.idents]

    @property
    def unlimited(self) -> bool:
        return self.limit is None

    def queue(self, pipe) -> None:
        for ident, key in zip(self.idents, self.keys):
            pipe.incrby(key, self.counts[ident])
            pipe.expire(key, int(self.duration) + 1)

    def answer(self, replies: list) -> tuple[dict, float]:
        """({ident: how many may go}, seconds until the window ends) from the pipeline's replies."""
        allowed = {}
        for ident, total in zip(self.idents, replies[::2]):
            before = total - self.counts[ident]
            allowed[ident] = max(0, min(self.counts[ident], self.limit - before))
        return allowed, self.wait

    def everyone(self) -> tuple[dict, float]:
        """No limit, or Redis unreachable: every request goes (predictions beat throttling)."""
        if not self.unlimited:
            logger.warning("throttle counter unavailable; letting the requests through")
        return dict(self.counts), 0.0


def throttle_take(scope: str, counts: dict) -> tuple[dict, float]:
    """Counts `counts[ident]` requests of each client against the scope's rate in one Redis round
    trip; returns ({ident: how many of them may go}, seconds until the window ends)."""
    from apps.core.redis_client import get_redis

    round_ = ThrottleRound(scope, counts)
    if round_.unlimited:
        return round_.everyone()
    try:
        pipe = get_redis().pipeline(transaction=False)
        round_.queue(pipe)
        return round_.answer(pipe.execute())
    except redis.RedisError:
        return round_.everyone()


class PredictRateThrottle(ScopedRateThrottle):
    """ScopedRateThrottle's scope and rate (REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope]) per
    client, counted with one atomic Redis INCR in a fixed window.

    DRF's own history is a list of timestamps in the cache, read and rewritten whole on every
    request (60,000 entries at 60000/minute) and racy between processes; a counter is neither.
    If Redis is unreachable the request is let through (and logged): predictions beat throttling.
    """

    def get_rate(self):
        # Read at request time (DRF binds THROTTLE_RATES at import), so a changed setting applies.
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"No throttle rate set for scope {self.scope!r}.") from None

    def allow_request(self, request, view):
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        ident = request.user.pk if request.user and request.user.is_authenticated else self.get_ident(request)
        allowed, self._wait = throttle_take(self.scope, {ident: 1})
        return allowed[ident] == 1

    def wait(self):
        return max(getattr(self, "_wait", 0.0), 0.0)
