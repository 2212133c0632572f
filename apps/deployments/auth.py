"""Authentication and throttling for the prediction endpoints, built for their request rate.

Token checks are the same as everywhere (apps.core.authentication), but a verified token is
remembered in-process for DEPLOYMENTS_AUTH_CACHE_SECONDS (5 s), roles included, so a busy client
costs no database query per prediction. A revoked or expired token, or a removed role, stops
working within that many seconds.
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

from apps.core.authentication import ApiTokenAuthentication
from apps.core.models import hash_token
from apps.core.roles import has_portal_role

logger = logging.getLogger(__name__)

_MAX_CACHED_TOKENS = 10_000


class CachedApiTokenAuthentication(ApiTokenAuthentication):
    _cache: dict[str, tuple[float, object, object]] = {}
    _lock = threading.Lock()

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        key = hash_token(header[1].decode(errors="replace"))
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now and not hit[2].is_expired:
            return hit[1], hit[2]
        user, token = super().authenticate(request)
        has_portal_role(user)  # computes and caches the roles on the user object
        ttl = float(getattr(settings, "DEPLOYMENTS_AUTH_CACHE_SECONDS", 5))
        if ttl > 0:
            with self._lock:
                if len(self._cache) >= _MAX_CACHED_TOKENS:
                    self._cache.clear()
                self._cache[key] = (now + ttl, user, token)
        return user, token

    @classmethod
    def forget_all(cls) -> None:
        with cls._lock:
            cls._cache.clear()


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
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if self.num_requests is None:
            return True
        ident = request.user.pk if request.user and request.user.is_authenticated else self.get_ident(request)
        now = time.time()
        window = int(now // self.duration)
        key = f"mlops:throttle:{self.scope}:{ident}:{window}"
        from apps.monitoring.redis_client import get_redis

        try:
            pipe = get_redis().pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, int(self.duration) + 1)
            count = pipe.execute()[0]
        except redis.RedisError:
            logger.warning("throttle counter unavailable; letting the request through")
            return True
        self._wait = (window + 1) * self.duration - now
        return count <= self.num_requests

    def wait(self):
        return max(getattr(self, "_wait", 0.0), 0.0)

