"""The WebSocket origin check: a browser page may open a socket with the user's session only from
the portal's own origin (scheme, host and port, as the same-origin policy means it) or from an
origin listed in CSRF_TRUSTED_ORIGINS (a portal behind a TLS-terminating proxy lists its public
https origin there, as Django's CSRF check already needs).

Channels' AllowedHostsOriginValidator compares host names only, so a page on the same host but
another port or scheme (any other service on that machine) could use the session.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}
SOCKET_TO_PAGE_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def _origin(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:  # a malformed port
        return None
    if not parts.hostname or port is None:
        return None
    return scheme, parts.hostname.lower(), port


def trusted_origins() -> set[tuple[str, str, int]]:
    origins = set()
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        parts = urlsplit(entry)
        if parts.scheme in DEFAULT_PORTS and "*" not in parts.netloc:
            origin = _origin(parts.scheme, parts.netloc)
            if origin:
                origins.add(origin)
    return origins


def origin_allowed(scope: dict) -> bool:
    headers = dict(scope.get("headers") or [])
    raw_origin = headers.get(b"origin", b"").decode("latin-1").strip()
    if not raw_origin or raw_origin == "null":
        return False
    parts = urlsplit(raw_origin)
    origin = _origin(parts.scheme, parts.netloc) if parts.scheme in DEFAULT_PORTS else None
    if origin is None:
        return False
    if origin in trusted_origins():
        return True
    host = headers.get(b"host", b"").decode("latin-1").strip()
    domain, _ = split_domain_port(host)
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:  # as Django's own Host check
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    if not domain or not validate_host(domain, allowed_hosts):
        return False
    page_scheme = SOCKET_TO_PAGE_SCHEME.get(scope.get("scheme") or "ws")
    return page_scheme is not None and origin == _origin(page_scheme, host)


class SameOriginValidator:
    """ASGI middleware: refuses (403 at the handshake) a WebSocket whose Origin is not allowed."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
