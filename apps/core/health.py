"""Readiness checks: each returns None when healthy or a short reason when not."""

from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"
        return f"{type(exc).__name__}: {exc}".strip()[:300]
    return None


def check_redis() -> str | None:
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
    except Exception as exc:
        return f"cannot reach Redis at {settings.REDIS_URL}: {type(exc).__name__}: {exc}"[:300]
    return None


def check_worker(timeout: float = 1.0) -> str | None:
    from mlops_portal.celery import app

    try:
        replies = app.control.ping(timeout=timeout)
    except Exception as exc:
        return f"cannot ask workers: {type(exc).__name__}: {exc}"[:300]
    if not replies:
        return f"no Celery worker answered within {timeout:g}s"
    return None


def readiness() -> dict[str, str]:
    results = {"database": check_database(), "redis": check_redis()}
    # Asking workers goes through Redis; with Redis down the answer is already known.
    results["worker"] = check_worker() if results["redis"] is None else "skipped: Redis is down"
    return {name: (problem or "ok") for name, problem in results.items()}


# Parts an app can lose while the process stays up, registered by that app (apps.training: model-type
# plugins that failed to load); /healthz and the admin name them.
_problem_sources: list[Callable[[], list[str]]] = []


def problem_source_register(source: Callable[[], list[str]]) -> None:
    if source not in _problem_sources:
        _problem_sources.append(source)


def reported_problems() -> list[str]:
    """What the registered sources report (empty when all is well)."""
    return [problem for source in _problem_sources for problem in source()]
