"""Request bodies bounded before they are read: an ASGI middleware in front of everything.

A body whose `Content-Length` is over its endpoint's limit is answered 413 without reading a byte
of it; a body without one (chunked) is counted as it streams and refused the moment it passes the
limit. Nothing downstream (Django's request parsing, the prediction fast path) ever holds more than
the limit. The limit is REQUEST_BODY_MAX_BYTES for every endpoint, except the two that take dataset
files (API and admin upload), which get DATASET_UPLOAD_MAX_BYTES plus room for the multipart framing.

It needs a server that hands the body to the application as it arrives (uvicorn does; daphne
buffers the whole body first, which is why the portal's web process is uvicorn).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from django.conf import settings

from .middleware import error_body

UPLOAD_PATHS = (
    re.compile(r"^/api/v1/datasets/\d+/versions/$"),
    re.compile(r"^/admin/datasets/dataset/\d+/upload/$"),
)
MULTIPART_ALLOWANCE = 64 * 1024


class BodyTooLarge(Exception):
    """Raised from `receive` once a streamed body passes its limit; whoever reads the body must let
    it through (the prediction fast path re-raises it) so the middleware answers the 413."""


def body_limit(path: str) -> int:
    if any(pattern.match(path) for pattern in UPLOAD_PATHS):
        return settings.DATASET_UPLOAD_MAX_BYTES + MULTIPART_ALLOWANCE
    return settings.REQUEST_BODY_MAX_BYTES


# Paths whose errors have a shape of their own, registered by the app that owns them (apps.deployments:
# MLflow's on its scoring endpoints), so core needs to know none of them.
_error_shapes: list[tuple[re.Pattern, Callable[[str, int], dict]]] = []


def error_shape_register(pattern: str, build: Callable[[str, int], dict]) -> None:
    """`build(message, status)` is the body of an error on a path `pattern` matches."""
    compiled = re.compile(pattern)
    if all(existing.pattern != pattern for existing, _ in _error_shapes):
        _error_shapes.append((compiled, build))


def _error_body(path: str, limit: int, size: int | None) -> bytes:
    found = f"{size:,} bytes" if size is not None else "more"
    message = f"the request body is {found}, over this endpoint's limit of {limit:,} bytes"
    for pattern, build in _error_shapes:
        if pattern.match(path):
            return json.dumps(build(message, 413)).encode()
    return json.dumps(error_body(path, message)).encode()


async def _refuse(send, path: str, limit: int, size: int | None) -> None:
    body = _error_body(path, limit, size)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.application(scope, receive, send)
        path = scope.get("path", "")
        limit = body_limit(path)
        declared = None
        for name, value in scope.get("headers") or ():
            if name == b"content-length" and value.isdigit():  # the server refuses a malformed one itself
                declared = int(value)
        if declared is not None and declared > limit:
            return await _refuse(send, path, limit, declared)

        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            return await self.application(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send, path, limit, None)
