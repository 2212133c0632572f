"""While one web process serves predictions as fast as a load generator can send them, a WebSocket
client on that same process keeps receiving its pushes, all of them and in order: model calls run off
the event loop, so they cannot hold the socket up. The latency itself is a benchmark's figure
(bench/bench_log_latency.py --load-connections 32); this test proves arrival and order under load."""

import asyncio
import json
import subprocess
import sys
import time

import pytest
from django.test import Client

from apps.core.services import api_token_create
from apps.deployments.notify import GROUP
from apps.deployments.services.model_deployment_service import deployment_create
from tests.conftest import ROOT, worker_env
from tests.deployments.conftest import WebProcess, free_port

pytestmark = pytest.mark.django_db(transaction=True)

PUSHES = 60

# Keep-alive clients in rounds of one second until stdin closes; then prints "<ok> <errors>".
LOAD = """
import select, sys
sys.path.insert(0, {root!r})
from bench.serving.loadgen import build_request, load
requests = [build_request("127.0.0.1", {port}, "/api/v1/deployments/price-direction/predict",
                          {{"dataframe_records": [{{"f1": i / 10, "f2": -0.2, "f3": 0.1}}]}},
                          {{"Authorization": "Bearer {token}", "X-Routing-Key": f"c{{i}}"}}) for i in range(32)]
ok = errors = 0
while not select.select([sys.stdin], [], [], 0)[0]:
    result = load("127.0.0.1", {port}, requests, connections=32, duration_s=1)
    ok, errors = ok + result.ok, errors + result.errors
print(ok, errors)
"""


@pytest.fixture
def web(monkeypatch):
    # As fast as the clients can send: the throttle's refusals would be cheap answers, not load.
    monkeypatch.setenv("API_THROTTLE_PREDICT", "100000000/minute")
    server = WebProcess(free_port()).start()
    yield server
    server.stop()


def test_pushes_arrive_in_order_while_predictions_saturate_the_same_process(
    make_version, staff_user, analyst_user, web
):
    deployment_create(name="price-direction", model_version=make_version(seed=0), user=staff_user)
    _, token = api_token_create(user=analyst_user, name="load")
    browser = Client()
    browser.force_login(analyst_user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"

    load = subprocess.Popen(
        [sys.executable, "-c", LOAD.format(root=str(ROOT), port=web.port, token=token)],
        env=worker_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)  # the load is at full speed before the first push
        received = asyncio.run(push_and_listen(web.port, cookie))
    finally:
        output, _ = load.communicate(input="", timeout=60)
    ok, errors = map(int, output.split())

    assert received == [f"push-{i}" for i in range(PUSHES)]
    assert errors == 0
    assert ok > 300, f"only {ok} predictions answered: the process was not under load"


async def push_and_listen(port: int, cookie: str) -> list[str]:
    from channels.layers import get_channel_layer
    from websockets.asyncio.client import connect

    layer = get_channel_layer()
    received = []
    async with connect(
        f"ws://127.0.0.1:{port}/ws/deployments/",
        additional_headers={"Cookie": cookie},
        origin=f"http://127.0.0.1:{port}",
    ) as socket:
        for i in range(PUSHES):
            await layer.group_send(GROUP, {"type": "deployment.changed", "deployment": f"push-{i}"})
            await asyncio.sleep(0.02)
        while len(received) < PUSHES:
            message = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
            received.append(message["deployment"])
    return received
