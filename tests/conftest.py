"""Shared fixtures: the three kinds of user, API clients with real tokens, and a real Celery worker.

Integration tests that use `celery_worker` run against PostgreSQL with committed data
(transactional database) because the worker is a separate process with its own connection.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis as redis_lib
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


def pytest_configure(config):
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        raise pytest.UsageError(
            "The suite runs on PostgreSQL: run `make test`, or set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test"
        )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """Before a test's fixtures are torn down, this process's prediction-log writer stores what the
    test served and stops (the next test starts a fresh one). Left running, its insert races the
    transactional tests' TRUNCATE (a deadlock that fails the flush) and its connection outlives the
    test into the next one's setup, where database access is blocked."""
    from apps.monitoring.services import logbuffer

    logbuffer.prediction_logs_close(timeout=5)
    logbuffer.forget_process_writer()


def clear_portal_keys():
    """The serving keys only: the same Redis database is the test worker's broker."""
    from apps.core.redis_client import get_redis

    client = get_redis()
    for pattern in ("mlops:predlog:*", "mlops:deployments:*", "mlops:throttle:*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture
def fresh_serving_state(settings):
    """A cold process cache of routing tables and tokens and an empty Redis buffer; tables are built
    in the request (not a background thread), so they see the test's uncommitted rows."""
    from apps.deployments.auth import CachedApiTokenAuthentication
    from apps.deployments.serving.state import serving_state

    settings.DEPLOYMENTS_RELOAD_IN_BACKGROUND = False
    settings.DEPLOYMENTS_GENERATION_POLL_S = 0.0
    serving_state.reset()
    CachedApiTokenAuthentication.forget_all()
    clear_portal_keys()
    yield serving_state
    # Not the Redis keys at teardown: a fault test's REDIS_URL may still name a dead port here.
    serving_state.reset()


@pytest.fixture(scope="session", autouse=True)
def _clean_test_redis():
    """The suite owns its Redis database number (REDIS_URL in `make test`); start it empty."""
    redis_lib.Redis.from_url(settings.REDIS_URL).flushdb()
    yield


def _user(username, role):
    from apps.core.services import user_with_role_ensure

    return user_with_role_ensure(username=username, password=f"{username}-pass-123", role=role)


@pytest.fixture
def staff_user(db):
    from apps.core.roles import ML_STAFF

    return _user("staffer", ML_STAFF)


@pytest.fixture
def analyst_user(db):
    from apps.core.roles import ANALYST

    return _user("analyst1", ANALYST)


@pytest.fixture
def client_user(db):
    """The product's service account: predicts and sends ground truth, nothing else."""
    from apps.core.roles import PREDICTION_CLIENT

    return _user("pricing-service", PREDICTION_CLIENT)


@pytest.fixture
def outsider_user(db):
    return _user("outsider", None)


def _token_client(user):
    from rest_framework.test import APIClient

    from apps.core.services import api_token_create

    _, raw = api_token_create(user=user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.user = user
    return client


@pytest.fixture
def staff_api(staff_user):
    return _token_client(staff_user)


@pytest.fixture
def analyst_api(analyst_user):
    return _token_client(analyst_user)


@pytest.fixture
def client_api(client_user):
    return _token_client(client_user)


@pytest.fixture
def outsider_api(outsider_user):
    return _token_client(outsider_user)


@pytest.fixture
def anon_api():
    from rest_framework.test import APIClient

    return APIClient()


def _test_database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{s['NAME']}"


def worker_env() -> dict:
    """Environment for processes (worker, web server) that must see the test database and Redis."""
    env = os.environ.copy()
    env["DATABASE_URL"] = _test_database_url()
    env["REDIS_URL"] = settings.REDIS_URL
    env["MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    # Two pool processes on two cores: one thread each, or they fight over the CPUs.
    env.setdefault("TRAINING_THREADS", "1")
    return env


class WorkerProcess:
    """A real `celery worker` process on every queue: housekeeping's and training's."""

    def __init__(
        self,
        name: str,
        queues: str = "default,housekeeping,cpu,gpu",
        concurrency: int = 2,
        extra_env=None,
        broker_url: str | None = None,
    ):
        self.name = name
        self.broker_url = broker_url  # a fault test's private broker; None: the suite's
        self.queues = queues
        self.concurrency = concurrency
        self.extra_env = extra_env or {}
        self.proc = None
        self.log_path = ARTIFACTS / f"worker-{name}.log"

    @property
    def hostname(self) -> str:
        return f"{self.name}@pytest"

    def start(self, timeout: float = 90):
        env = worker_env() | self.extra_env
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "mlops_portal",
                "worker",
                "-Q",
                self.queues,
                "-c",
                str(self.concurrency),
                "-n",
                self.hostname,
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early, see {self.log_path}")
            if self.ping(timeout=0.5):
                return self
        raise RuntimeError(f"worker did not answer within {timeout}s, see {self.log_path}")

    @property
    def client(self):
        """A Celery app that talks to this worker's broker."""
        from celery import Celery

        from mlops_portal.celery import app

        if self.broker_url is None:
            return app
        if getattr(self, "_client", None) is None:
            self._client = Celery("pytest-client", broker=self.broker_url, backend=None, set_as_current=False)
        return self._client

    def ping(self, timeout: float = 1.0) -> bool:
        try:
            return bool(self.client.control.ping(destination=[self.hostname], timeout=timeout))
        except Exception:  # noqa: BLE001 — a broker that is down or coming back answers nothing
            return False

    def child_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def kill(self):
        """SIGKILL the whole worker (main process and pool children), as a crashed host would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "log", None):
            self.log.close()


@pytest.fixture(scope="session")
def _session_worker(django_db_setup, django_db_blocker):
    from mlops_portal.celery import app

    app.control.purge()
    worker = WorkerProcess(f"w{uuid.uuid4().hex[:6]}").start()
    yield worker
    worker.stop()


@pytest.fixture
def celery_worker(_session_worker, transactional_db):
    """The session's real worker; the test's data is committed so the worker can read it."""
    if _session_worker.proc.poll() is not None:
        _session_worker.start()
    return _session_worker


@pytest.fixture
def worker_factory(django_db_setup, transactional_db):
    """Start extra workers (for crash and parallelism tests); all are stopped after the test."""
    started = []

    def make(name=None, **kwargs):
        worker = WorkerProcess(name or f"x{uuid.uuid4().hex[:6]}", **kwargs).start()
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.stop()
