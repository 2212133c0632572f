"""Against real web processes: a rollback reaches every process within two seconds while traffic
flows, no request fails meanwhile, and every served request ends up in the prediction log."""

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import transaction

from apps.deployments.services.model_deployment_service import (
    deployment_create,
    deployment_rollback,
    deployment_set_traffic,
)
from apps.monitoring.models import PredictionLog

from .conftest import record, wait_until


class Client(threading.Thread):
    """Keep-alive client posting predictions until stopped; records (time, status, version, request id)."""

    def __init__(self, port: int, token: str, index: int):
        super().__init__(daemon=True)
        self.port, self.token, self.index = port, token, index
        self.results: list[tuple[float, int, str, str]] = []
        self.stopping = threading.Event()

    def run(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        i = 0
        while not self.stopping.is_set():
            body = json.dumps(
                {"dataframe_records": [record(0.1 * (i % 7), -0.2, 0.3)], "routing_key": f"c{self.index}-{i % 50}"}
            )
            try:
                connection.request(
                    "POST",
                    "/api/v1/deployments/price-direction/predict",
                    body=body,
                    headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
                )
                response = connection.getresponse()
                data = response.read()
                parsed = json.loads(data) if response.status == 200 else {}
                self.results.append(
                    (time.monotonic(), response.status, parsed.get("model_version", ""), parsed.get("request_id", ""))
                )
            except (OSError, http.client.HTTPException) as exc:
                self.results.append((time.monotonic(), 0, type(exc).__name__, ""))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            i += 1
        connection.close()


@pytest.mark.worker
def test_a_rollback_reaches_every_web_process_within_two_seconds_without_dropping_or_losing_a_request(
    celery_worker, web_processes, make_version, staff_user, analyst_user
):
    from mlops_portal.celery import app

    from apps.core.services import api_token_create

    old, new = make_version(seed=0), make_version(seed=1)
    deployment = deployment_create(name="price-direction", model_version=old, user=staff_user)
    deployment_set_traffic(deployment=deployment, user=staff_user, allocations=[{"model_version": new, "weight": 100}])
    _, token = api_token_create(user=analyst_user, name="live")

    def ready(process) -> int:
        # A fresh process loads its models on first use; the V2 readiness call does that up front.
        connection = http.client.HTTPConnection("127.0.0.1", process.port, timeout=60)
        connection.request("GET", "/v2/models/price-direction/ready", headers={"Authorization": f"Bearer {token}"})
        status = connection.getresponse().status
        connection.close()
        return status

    started = time.monotonic()
    with ThreadPoolExecutor(len(web_processes)) as pool:
        assert list(pool.map(ready, web_processes)) == [200] * len(web_processes)
    print(f"ready after {time.monotonic() - started:.1f}s")
    clients = [Client(process.port, token, i) for i, process in enumerate(web_processes) for _ in range(2)]
    for client in clients:
        client.start()
    assert wait_until(
        lambda: all(sum(r[2] == str(new.version) for r in c.results) >= 20 for c in clients), timeout=30
    ), "every client is served by the new version before the rollback"
    with transaction.atomic():
        deployment_rollback(deployment=deployment, model_version=old, user=staff_user, reason="live test")
    rolled_back_at = time.monotonic()

    def settled(client, in_a_row=20) -> bool:
        # The traffic runs until every client has been answered by the old version many times in a
        # row since the rollback; then a straggler answering with the new version would have shown.
        after = [version for t, _, version, _ in list(client.results) if t > rolled_back_at]
        return len(after) >= in_a_row and all(version == str(old.version) for version in after[-in_a_row:])

    every_client_settled = wait_until(lambda: all(settled(client) for client in clients), timeout=15)
    print(f"settled {time.monotonic() - rolled_back_at:.1f}s after the rollback")
    for client in clients:
        client.stopping.set()
    for client in clients:
        client.join(15)
    assert not any(client.is_alive() for client in clients), "a client thread did not stop within 15 s"

    results = [r for client in clients for r in client.results]
    failures = [r for r in results if r[1] != 200]
    assert not failures, f"{len(failures)} failed requests, e.g. {failures[:3]}"
    assert every_client_settled, (
        "within 15 s of the rollback, not every client was answered by the old version 20 times in a row"
    )
    for client in clients:
        after = [(t, version) for t, _, version, _ in client.results if t > rolled_back_at]
        last_new = max((t for t, version in after if version == str(new.version)), default=rolled_back_at)
        assert last_new - rolled_back_at <= 2.0, (
            f"port {client.port} served the new version {last_new - rolled_back_at:.2f}s after"
        )
        assert after and after[-1][1] == str(old.version)

    print(f"{len(results)} requests; flushing")
    served = {request_id for _, _, _, request_id in results}
    stored = PredictionLog.objects.filter(deployment=deployment, shadow=False)

    def all_stored() -> bool:
        # Waits for the rows themselves: an empty buffer may still mean a flush that has not committed.
        if stored.count() >= len(served):
            return True
        app.send_task("monitoring.flush_prediction_logs", queue="default")  # as beat does
        return False

    flushing_since = time.monotonic()
    wait_until(all_stored, timeout=20, interval=0.5)
    print(f"stored after {time.monotonic() - flushing_since:.1f}s")
    logged = set(str(r) for r in stored.values_list("request_id", flat=True))
    assert len(served) == len(results) > 100
    assert logged == served, f"served {len(served)}, logged {len(logged)} within 20 s of the end of traffic"
