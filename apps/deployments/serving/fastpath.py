"""ASGI fast path for the two prediction endpoints, in front of Django.

`POST /api/v1/deployments/<name>/predict` (and its MLflow twin `…/invocations`) and
`POST /v2/models/<name>[/versions/<v>]/infer` with a
Bearer token are answered here without Django's request/middleware/DRF machinery; everything else (and these
paths with a session cookie instead of a token) goes to the wrapped Django application, whose
DRF views give the same answers one request at a time. Same checks, same shared code:

    token (apps.deployments.auth, cached) → portal role → body → route → throttle ("predict"
    scope, once per batch, with redis.asyncio on the loop) → check → predict → log

and the bodies come from apps.deployments.serving.protocol, so both paths answer alike. One
difference in order: DRF throttles before the view reads the body, so a client over its rate
whose body is also malformed (or names no deployment) gets 429 there and 400/404 here.

Micro-batching off the event loop (Batcher): a request's work is queued for an inference thread;
the requests queued while the thread is busy go to it together (up to each deployment's
`max_batch_size`, held up to its `max_batch_wait_ms` for more), with one throttle round trip to
Redis and one preprocessor pass + model call per model version, for every model (history models
too: see apps.deployments.serving.predict); their prediction logs go to the process's log writer in
one call. Under light load a batch holds one request and adds no waiting; under heavy load it holds
many and amortises the fixed per-call cost of the preprocessor and the estimator.

Wired in mlops_portal/asgi.py as `"http": PredictionFastPath(django_asgi_app)`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import weakref
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor

import redis
import redis.asyncio as aioredis

from channels.db import database_sync_to_async
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from rest_framework import exceptions

from apps.core.bodylimit import BodyTooLarge
from apps.core.permissions import PREDICT_DENIED
from apps.core.roles import may_predict

from ..auth import ThrottleRound, cached_token_user, split_authorization, verify_token
from .batchstats import batch_sizes
from .inputs import InputError, loads_mlflow_body
from .predict import Prepared, predictor
from .protocol import MLFLOW, V2, describe_error, error_body, render, request_options, response_body, response_headers
from .state import ModelUnavailable, serving_state
from .v2 import HEADER_LENGTH, VersionNotServed, decode_request

logger = logging.getLogger(__name__)

ROUTES = (
    (re.compile(r"^/api/v1/deployments/(?P<name>[-a-zA-Z0-9_]+)/predict$"), MLFLOW),
    # MLflow's own scoring path: the same endpoint.
    (re.compile(r"^/api/v1/deployments/(?P<name>[-a-zA-Z0-9_]+)/invocations$"), MLFLOW),
    (re.compile(r"^/v2/models/(?P<name>[-a-zA-Z0-9_]+)/infer$"), V2),
    (re.compile(r"^/v2/models/(?P<name>[-a-zA-Z0-9_]+)/versions/(?P<version>[^/]+)/infer$"), V2),
)
THROTTLE_SCOPE = "predict"


class Throttled(Exception):
    def __init__(self, wait: float):
        self.wait = wait


class InferenceJob:
    """One request for the Batcher, from either transport (this HTTP fast path, the gRPC service)."""

    __slots__ = (
        "table",
        "body",
        "raw",
        "protocol",
        "routing_key",
        "started",
        "ident",
        "future",
        "prepared",
        "version",
        "queued_at",
    )

    def __init__(self, **kwargs):
        for key, value in kwargs.items():
            setattr(self, key, value)
        self.prepared = None


class Batcher:
    """Serves prediction jobs on inference threads, off the event loop, batched while they are busy.

    Jobs queue per deployment. When an inference thread is free, every deployment whose queue is due
    gives it up to its `max_batch_size` jobs as one batch; a queue is due at once when its
    `max_batch_wait_ms` is 0 (the default) or it is full, else once its oldest job has waited that
    long. An idle process so answers a request at once, and a busy one gathers every request that
    arrives during a model call into the next batch: the batch grows with the load. The loop itself
    only parses, routes, throttles (one redis.asyncio round trip per batch) and answers, so WebSockets
    and admin pages of the same process stay responsive under full prediction load.

    Threads, not processes: the estimators' numeric work (numpy, scikit-learn, XGBoost, LightGBM,
    torch) releases the GIL, and a process pool would pickle every batch and hold a copy of every
    model per process. DEPLOYMENTS_INFERENCE_THREADS (default 1 per web worker; run more web workers
    to use more cores) bounds them.
    """

    def __init__(self, threads: int | None = None):
        self._queues: dict[str, deque[InferenceJob]] = {}
        self._threads = max(1, threads or int(getattr(settings, "DEPLOYMENTS_INFERENCE_THREADS", 1)))
        self._busy = 0
        self._timer: asyncio.TimerHandle | None = None
        self._soon = False
        self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="inference")

    async def submit(self, job: InferenceJob):
        loop = asyncio.get_running_loop()
        job.future = loop.create_future()
        job.queued_at = loop.time()
        self._queues.setdefault(job.table.name, deque()).append(job)
        self._schedule(loop)
        return await job.future

    @staticmethod
    def _due_in(queue: deque, now: float) -> float:
        """Seconds until this queue's batch should go (0: now)."""
        table = queue[0].table
        if table.max_batch_wait_ms <= 0 or len(queue) >= table.max_batch_size:
            return 0.0
        return max(0.0, queue[0].queued_at + table.max_batch_wait_ms / 1000 - now)

    def _schedule(self, loop) -> None:
        if self._soon or self._busy >= self._threads or not self._queues:
            return
        due = min(self._due_in(queue, loop.time()) for queue in self._queues.values())
        if due <= 0:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._soon = True
            loop.call_soon(self._start, loop)  # the jobs of this loop iteration still join
        elif self._timer is None:
            self._timer = loop.call_later(due, self._start, loop)

    def _start(self, loop) -> None:
        self._soon, self._timer = False, None
        if self._busy >= self._threads or not self._queues:
            return
        now, jobs = loop.time(), []
        for name in list(self._queues):
            queue = self._queues[name]
            if self._due_in(queue, now) > 0:
                continue
            for _ in range(min(len(queue), max(1, queue[0].table.max_batch_size))):
                jobs.append(queue.popleft())
            if not queue:
                del self._queues[name]
        if not jobs:
            self._schedule(loop)
            return
        self._busy += 1
        asyncio.ensure_future(self._dispatch(loop, jobs))

    async def _dispatch(self, loop, jobs: list[InferenceJob]) -> None:
        try:
            allowed, wait = await throttle_take_async(THROTTLE_SCOPE, Counter(job.ident for job in jobs))
            served = []
            for job in jobs:
                if allowed[job.ident] > 0:
                    allowed[job.ident] -= 1
                    served.append(job)
                elif not job.future.done():
                    job.future.set_exception(Throttled(wait))
        except Exception as exc:  # never leave a request waiting forever
            logger.exception("throttling a prediction batch of %d failed", len(jobs))
            self._finish(loop, jobs, None, exc)
            return
        if not served:
            self._finish(loop, [], None, None)
            return
        done = loop.run_in_executor(self._executor, self._serve_batch, served)
        done.add_done_callback(lambda future: self._finish(loop, served, future, None))

    def _finish(self, loop, jobs: list[InferenceJob], done, failure) -> None:
        self._busy -= 1
        if failure is None and done is not None:
            failure = RuntimeError("the inference thread was stopped") if done.cancelled() else done.exception()
        outcomes = None if failure is not None or done is None else done.result()
        for index, job in enumerate(jobs):
            if job.future.done():
                continue  # the client went away
            if failure is not None:
                job.future.set_exception(failure)
            elif isinstance(outcomes[index], BaseException):
                job.future.set_exception(outcomes[index])
            else:
                job.future.set_result(outcomes[index])
        self._schedule(loop)

    def _serve_batch(self, jobs: list[InferenceJob]) -> list:
        """On an inference thread: each job's Prediction, or the exception that is its answer."""
        batch_sizes.observe(len(jobs))
        try:
            # Routed and logged inside one routing epoch: see ServingState.routing.
            with serving_state.routing():
                return self._serve(jobs)
        except Exception as exc:  # never leave a request waiting forever
            logger.exception("prediction batch of %d failed", len(jobs))
            return [exc] * len(jobs)

    def _serve(self, jobs: list[InferenceJob]) -> list:
        outcomes: list = [None] * len(jobs)
        groups: dict[int, list[Prepared]] = {}
        ready: list[int] = []
        for index, job in enumerate(jobs):
            try:
                job.prepared = predictor.prepare(
                    table=job.table,
                    body=job.body,
                    protocol=job.protocol,
                    raw_body=job.raw,
                    routing_key=job.routing_key,
                    started=job.started,
                    version=job.version,
                )
            except Exception as exc:
                # One request's failure (bad input, or a bug it triggers) is that request's alone. A
                # version that cannot be loaded was logged once when its table was built; a version
                # the deployment does not serve is the client's error (404).
                if not isinstance(exc, (InputError, ModelUnavailable, VersionNotServed)):
                    logger.exception("preparing a prediction request to %s failed", job.table.name)
                outcomes[index] = exc
                continue
            groups.setdefault(job.prepared.served.version_id, []).append(job.prepared)
            ready.append(index)
        limit = int(getattr(settings, "DEPLOYMENTS_BATCH_MAX_ROWS", 512))
        for items in groups.values():
            chunk, rows = [], 0
            for item in items:
                if chunk and rows + item.model_rows > limit:
                    predictor.run_batch(chunk)
                    chunk, rows = [], 0
                chunk.append(item)
                rows += item.model_rows
            if chunk:
                predictor.run_batch(chunk)
        for index in ready:
            try:
                outcomes[index] = predictor.result(jobs[index].prepared)
            except Exception as exc:
                outcomes[index] = exc
        return outcomes


# One client per event loop (a redis.asyncio connection belongs to the loop that opened it) and URL.
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _async_redis() -> aioredis.Redis:
    clients = _async_clients.setdefault(asyncio.get_running_loop(), {})
    url = settings.REDIS_URL
    client = clients.get(url)
    if client is None:
        client = clients[url] = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
        )
    return client


async def throttle_take_async(scope: str, counts: dict) -> tuple[dict, float]:
    """apps.deployments.auth.throttle_take on the event loop (redis.asyncio): the same counters
    (keys and fixed windows), so the DRF views and this path share each client's rate, without a
    blocking round trip. Redis unreachable: the requests go through (and it is logged)."""
    round_ = ThrottleRound(scope, counts)
    if round_.unlimited:
        return round_.everyone()
    try:
        pipe = _async_redis().pipeline(transaction=False)
        round_.queue(pipe)
        return round_.answer(await pipe.execute())
    except (redis.RedisError, OSError):
        return round_.everyone()


class PredictionFastPath:
    def __init__(self, app):
        self.app = app
        self.batcher = Batcher()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            for pattern, protocol in ROUTES:
                match = pattern.match(scope["path"])
                if match:
                    headers = dict(scope["headers"])
                    if b"authorization" in headers and _django_would_serve(scope, headers):
                        return await self.serve(
                            match["name"], protocol, headers, receive, send, match.groupdict().get("version")
                        )
                    break
        return await self.app(scope, receive, send)

    async def serve(self, name: str, protocol: str, headers: dict, receive, send, version: str | None = None) -> None:
        started = time.perf_counter()
        try:
            # As DRF does: who is asking is settled before a byte of the body is buffered.
            user = await _authenticate(headers[b"authorization"])
            if not may_predict(user):
                raise exceptions.PermissionDenied(PREDICT_DENIED)
            raw = await _read_body(receive, int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0))
            if protocol == V2:  # binary tensors may follow a JSON header (serving/v2.py)
                header_length = headers.get(HEADER_LENGTH.lower().encode())
                body = decode_request(raw, header_length.decode("latin-1") if header_length is not None else None)
            else:  # JSON, or text/csv
                body = loads_mlflow_body(raw, headers.get(b"content-type"))
            routing_header = headers.get(b"x-routing-key")
            options = request_options(
                protocol, body, routing_header.decode(errors="replace") if routing_header else None
            )
            table = serving_state.table_nowait(name)
            if table is None:
                table = await database_sync_to_async(serving_state.table)(name)
            result = await self.batcher.submit(
                InferenceJob(
                    table=table,
                    body=body,
                    raw=raw,
                    protocol=protocol,
                    routing_key=options.routing_key,
                    started=started,
                    ident=user.pk,
                    version=version,
                )
            )
        except exceptions.APIException as exc:
            extra = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
            return await _respond(
                send, exc.status_code, error_body(protocol, str(exc.detail), status=exc.status_code), extra
            )
        except BodyTooLarge:
            raise  # the body-limit middleware answers it (413)
        except Throttled as exc:
            message = f"Request was throttled. Expected available in {max(1, round(exc.wait))} seconds."
            return await _respond(
                send, 429, error_body(protocol, message, status=429), {"Retry-After": str(max(1, round(exc.wait)))}
            )
        except Exception as exc:
            described = describe_error(exc, name)
            if described is None:
                logger.exception("prediction request to %s failed", name)
                return await _respond(send, 500, error_body(protocol, "internal error", status=500))
            status, message, extra = described
            return await _respond(send, status, error_body(protocol, message, status=status, **extra))
        payload, content = render(protocol, response_body(protocol, name, result, options), options)
        return await _send(send, 200, payload, content.pop("Content-Type"), {**content, **response_headers(result)})


def _django_would_serve(scope, headers: dict) -> bool:
    """Skipping Django's middleware must not skip its guards: a request with a Host outside
    ALLOWED_HOSTS, or plain HTTP where SECURE_SSL_REDIRECT wants HTTPS, goes to Django, which
    refuses or redirects it."""
    domain, _port = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    if not domain or not validate_host(domain, allowed):
        return False
    if getattr(settings, "SECURE_SSL_REDIRECT", False) and scope.get("scheme") != "https":
        proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
        if not proxy:
            return False
        header_name = proxy[0].removeprefix("HTTP_").replace("_", "-").lower().encode()
        if headers.get(header_name, b"").decode("latin-1") != proxy[1]:
            return False
    return True


async def _read_body(receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit and size > limit:
            raise InputError("body", "the request body is larger than the server accepts; send fewer rows per request")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _authenticate(header: bytes):
    raw = split_authorization(header)
    if raw is None:
        raise exceptions.NotAuthenticated("Authentication credentials were not provided.")
    hit = cached_token_user(raw)
    if hit is not None:
        return hit[0]
    user, _ = await database_sync_to_async(verify_token)(raw)
    return user


async def _respond(send, status: int, data: dict, headers: dict | None = None) -> None:
    body = json.dumps(data, separators=(",", ":")).encode()
    await _send(send, status, body, "application/json", headers or {})


async def _send(send, status: int, body: bytes, content_type: str, headers: dict) -> None:
    raw_headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
