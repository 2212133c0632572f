"""The prediction log under faults, with real processes: a real web process on the test database
serves the demo-like deployment (champion 90%, challenger 10%) to keep-alive clients while Redis
is restarted, and while the writer's database connection is terminated, the database refuses
connections, and the web process is stopped with SIGTERM while its inserts are stalled. Every
request answered 200 must end up with its PredictionLog row.

A beat-like flusher (prediction_logs_flush every 2 s, as the beat task does) runs beside the load,
so the same tests measure the design before the writer threads, which buffered lines in Redis.
"""

import http.client
import json
import os
import signal
import threading
import time

import psycopg
import pytest
import redis as redis_lib
from django.db import DatabaseError, connection

from apps.monitoring.models import PredictionLog
from apps.monitoring.services.logbuffer import prediction_logs_flush
from tests.brokers import PrivateRedis, free_port
from tests.deployments.conftest import WebProcess, record, wait_until

PREDICT = "/api/v1/deployments/price-direction/predict"
WRITER_APPLICATION_NAME = "mlops-prediction-log-writer"
BEAT_EVERY_S = 2.0  # monitoring migration 0002: the flush task's interval

pytestmark = pytest.mark.django_db(transaction=True)  # the web process reads committed rows


class Load:
    """Keep-alive clients posting predictions, and the beat-like flusher, until stopped."""

    def __init__(self, port: int, token: str, clients: int = 4):
        self.port, self.token = port, token
        self.results: list[tuple[float, int, str]] = []  # (monotonic time, status, request id)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]
        self.threads.append(threading.Thread(target=self._beat, daemon=True))

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(20)

    def _client(self, index: int):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        i = 0
        while not self.stopping.is_set():
            body = json.dumps(
                {"dataframe_records": [record(0.1 * (i % 7), -0.2, 0.3)], "routing_key": f"c{index}-{i % 50}"}
            )
            try:
                conn.request(
                    "POST",
                    PREDICT,
                    body=body,
                    headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
                )
                response = conn.getresponse()
                data = response.read()
                request_id = json.loads(data)["request_id"] if response.status == 200 else ""
                status = response.status
            except (OSError, http.client.HTTPException):
                status, request_id = 0, ""
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                time.sleep(0.05)
            with self.lock:
                self.results.append((time.monotonic(), status, request_id))
            i += 1
        conn.close()

    def _beat(self):
        while not self.stopping.wait(BEAT_EVERY_S):
            try:
                prediction_logs_flush(wait_s=0)
            except (DatabaseError, redis_lib.RedisError):
                pass  # a beat tick that fails is retried by the next one, as with celery beat
        connection.close()

    def answered(self, since: float = 0.0, until: float = float("inf")) -> int:
        with self.lock:
            return sum(1 for t, status, _ in self.results if status == 200 and since <= t <= until)

    def wait_for_answers(self, count: int, timeout: float = 30.0) -> None:
        start = time.monotonic()
        assert wait_until(lambda: self.answered(since=start) >= count, timeout=timeout), (
            f"only {self.answered(since=start)} answers in {timeout}s"
        )

    def served_ids(self) -> set[str]:
        with self.lock:
            return {request_id for _, status, request_id in self.results if status == 200}


@pytest.fixture
def demo_like(make_version, staff_user, analyst_user):
    """ "price-direction": champion 90%, challenger 10%, as seed_demo's; and an analyst's token."""
    from apps.core.services import api_token_create
    from apps.deployments.services.model_deployment_service import deployment_create, deployment_set_traffic

    champion, challenger = make_version(seed=0), make_version(seed=1)
    deployment = deployment_create(name="price-direction", model_version=champion, user=staff_user)
    deployment_set_traffic(
        deployment=deployment,
        user=staff_user,
        allocations=[{"model_version": champion, "weight": 90}, {"model_version": challenger, "weight": 10}],
    )
    _, token = api_token_create(user=analyst_user, name="durability")
    return token


def started(web: WebProcess, token: str) -> WebProcess:
    web.start()
    # A fresh process loads its models on first use; the V2 readiness call does that up front.
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=60)
    conn.request("GET", "/v2/models/price-direction/ready", headers={"Authorization": f"Bearer {token}"})
    assert conn.getresponse().status == 200
    conn.close()
    return web


def lost_logs(load: Load) -> tuple[int, int]:
    served = load.served_ids()
    logged = {
        str(r) for r in PredictionLog.objects.filter(request_id__in=list(served)).values_list("request_id", flat=True)
    }
    return len(served - logged), len(served)


def server_connection(dbname: str, autocommit: bool = True):
    """A connection of the test's own to the test server, beside the ones under test: to the
    maintenance database for ALTER DATABASE and pg_terminate_backend, to the test database to lock."""
    s = connection.settings_dict
    return psycopg.connect(
        host=s.get("HOST") or "127.0.0.1",
        port=s.get("PORT") or 5432,
        user=s.get("USER") or "postgres",
        password=s.get("PASSWORD") or None,
        dbname=dbname,
        autocommit=autocommit,
    )


def terminate_writers(admin) -> int:
    return admin.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
        [connection.settings_dict["NAME"], WRITER_APPLICATION_NAME],
    ).fetchone()[0]


def test_a_redis_restart_under_load_loses_no_prediction_log(demo_like, settings, tmp_path):
    redis_server = PrivateRedis(tmp_path / "redis").start()
    settings.REDIS_URL = redis_server.url  # worker_env() hands it to the web process
    web = WebProcess(free_port())
    try:
        started(web, demo_like)
        with Load(web.port, demo_like) as load:
            load.wait_for_answers(300)
            redis_server.stop()
            time.sleep(1.0)
            redis_server.start()  # empty: what was in it is gone
            load.wait_for_answers(300)
        prediction_logs_flush(wait_s=20)  # waits for the web process's writer to report it caught up
        lost, answered = lost_logs(load)
        print(f"redis restart under load: {lost} of {answered} answered predictions have no log")
        assert answered >= 600 and lost == 0
    finally:
        web.stop()
        redis_server.stop()


def test_terminated_connections_an_outage_and_a_shutdown_during_a_stall_lose_no_prediction_log(demo_like):
    web = WebProcess(free_port())
    admin = server_connection("postgres")
    database = connection.settings_dict["NAME"]
    staller = None
    try:
        started(web, demo_like)
        with Load(web.port, demo_like) as load:
            load.wait_for_answers(150)
            terminated = 0
            deadline = time.monotonic() + 20
            while terminated < 3 and time.monotonic() < deadline:
                found = terminate_writers(admin)
                terminated += found
                if found:
                    load.wait_for_answers(50)
                else:
                    time.sleep(0.02)

            # Outage: the database refuses new connections, and the writer's is cut.
            outage_start = time.monotonic()
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            try:
                terminate_writers(admin)
                time.sleep(1.5)
            finally:
                admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            outage_end = time.monotonic()
            load.wait_for_answers(150)

            # Stall: the log table is locked, so inserts wait; SIGTERM the web process meanwhile.
            staller = server_connection(database, autocommit=False)
            staller.execute("LOCK TABLE monitoring_predictionlog IN EXCLUSIVE MODE")
            stall_start = time.monotonic()
            load.wait_for_answers(100)
            os.killpg(web.proc.pid, signal.SIGTERM)
            time.sleep(1.5)
            outlived = web.proc.poll() is None  # still storing its buffer
            staller.commit()
            stall_answers = load.answered(since=stall_start)
            exit_code = web.proc.wait(20)
        lost, answered = lost_logs(load)
        print(
            f"database faults under load: {lost} of {answered} answered predictions have no log "
            f"({load.answered(outage_start, outage_end)} answered during the outage, {stall_answers} during the stall)"
        )
        assert lost == 0 and answered >= 450
        assert terminated == 3, "the writer's connection was found by its application_name and cut three times"
        assert outlived and exit_code in (0, -signal.SIGTERM), (
            "on SIGTERM the web process waited for its writer, then ended"
        )
        assert stall_answers >= 100
    finally:
        if staller is not None:
            staller.close()
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        admin.close()
        web.stop()
