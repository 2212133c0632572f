"""Live log latency: from a log line emitted by a training run in the Celery worker to its arrival at a
WebSocket client connected to the portal's real web process (mlops_portal.serve).

    .venv/bin/python bench/bench_log_latency.py [--epochs 300]

Same needs as bench_pipeline_overhead.py (PostgreSQL, Redis; own database, own queue, own worker),
plus a web process (one uvicorn worker) on a free port. A logged-in analyst's session cookie opens
ws/training/runs/<id>/?after=0 before the run is queued, so every line arrives live (none replayed).
Latency = arrival time at the client - the line's `ts` (set when the worker emitted it); one line per
epoch plus the pipeline's own lines, >= 200 in all.

The baseline, measured in the same invocation, is a bare channel-layer round trip (group_send ->
receive on the same Redis) from this process. Prints p50 / p95 / max of both and p95 / baseline p95;
the target is p95 <= 100 ms.

With --load-connections N (default 32; 0 skips it) a second run is watched while a load generator in
its own process (bench/serving/loadgen.py) sends one-row predictions to a scikit-learn deployment on
the SAME web process as fast as N keep-alive connections allow: the push latency while that host
serves predictions at full load, with the idle run as its baseline (issue 11's target: p95 <= 100 ms).
"""

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline_overhead import Environment, log, price_experiment  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def start_web(env: Environment, port: int, timeout: float = 60):
    proc = env.spawn(
        [sys.executable, "-m", "mlops_portal.serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        "web",
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the web process exited; see {env.media}/web.log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the web process did not answer in time")


def session_cookie(user) -> str:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


async def channel_layer_baseline(count: int = 300) -> list[float]:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = f"bench-{uuid.uuid4().hex[:6]}"
    await layer.group_add(group, channel)
    samples = []
    for i in range(count):
        started = time.perf_counter()
        await layer.group_send(group, {"type": "run.log", "seq": i, "message": "x" * 80})
        await layer.receive(channel)
        samples.append(time.perf_counter() - started)
    await layer.group_discard(group, channel)
    return samples


async def watch(url: str, cookie: str, origin: str, dispatch) -> list[float]:
    from websockets.asyncio.client import connect

    latencies = []
    async with connect(url, additional_headers={"Cookie": cookie}, origin=origin, max_size=2**22) as ws:
        await asyncio.to_thread(dispatch)
        while True:
            raw = await asyncio.wait_for(ws.recv(), timeout=600)
            arrived = time.time()
            message = json.loads(raw)
            if message["type"] == "run.log":
                latencies.append(arrived - datetime.fromisoformat(message["ts"]).timestamp())
            elif message["type"] == "run.status" and message["status"] in ("succeeded", "failed", "cancelled"):
                if message["status"] != "succeeded":
                    raise SystemExit(f"the run ended {message['status']}: {message.get('error')}")
                return latencies


# Runs in its own process in 2-second rounds until its stdin closes, then prints what it sent.
LOAD_SCRIPT = """
import select, sys, time
sys.path.insert(0, {root!r})
from bench.serving.loadgen import build_request, load
port, token, connections = {port}, {token!r}, {connections}
requests = [build_request("127.0.0.1", port, "/api/v1/deployments/bench-sklearn/predict",
                          {{"dataframe_split": {{"columns": {columns!r}, "data": [row]}}}},
                          {{"Authorization": "Bearer " + token, "X-Routing-Key": f"c{{i}}"}})
            for i, row in enumerate({rows!r})]
ok = errors = 0
started = time.perf_counter()
while not select.select([sys.stdin], [], [], 0)[0]:
    result = load("127.0.0.1", port, requests, connections=connections, duration_s=2)
    ok, errors = ok + result.ok, errors + result.errors
print(f"{{ok / (time.perf_counter() - started):.1f}} req/s, {{errors}} errors")
"""


def start_prediction_load(port: int, token: str, connections: int) -> subprocess.Popen:
    """The load generator in a process of its own, so it does not share this process's GIL with the
    WebSocket client being timed."""
    from bench.serving import fixtures

    rows = fixtures.table(n=64, seed=11)[fixtures.FEATURES].values.tolist()
    script = LOAD_SCRIPT.format(
        root=str(Path(__file__).resolve().parents[1]),
        port=port,
        token=token,
        connections=connections,
        rows=rows,
        columns=fixtures.FEATURES,
    )
    return subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def summary(name: str, ms: list[float]) -> float:
    p95 = percentile(ms, 95)
    print(
        f"{name:27s}p50 {statistics.median(ms):7.2f} ms   p95 {p95:7.2f} ms   max {max(ms):7.2f} ms   ({len(ms)} lines)"
    )
    return p95


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--load-connections", type=int, default=32)
    args = parser.parse_args()
    under_load = None

    with Environment("bench_loglat") as env:
        env.start_worker(f"bench-{uuid.uuid4().hex[:6]}@loglat")
        port = free_port()
        start_web(env, port)
        params = {"hidden_size": 16, "num_layers": 1, "batch_size": 64, "epochs": args.epochs, "patience": args.epochs}
        experiment, user = price_experiment(name="bench-log-latency", tickers=2, days=250, params=params)

        from apps.core.roles import ANALYST
        from apps.core.services import user_with_role_ensure
        from apps.training.services.training_pipeline import _dispatch, training_run_start

        viewer = user_with_role_ensure(username="bench-viewer", password=uuid.uuid4().hex, role=ANALYST)
        cookie = session_cookie(viewer)

        log("warm-up run (imports torch in the worker)")
        warm = training_run_start(
            experiment=experiment,
            framework="torch",
            model_type="mlp",
            params=params | {"epochs": 2, "patience": 2},
            user=user,
            dispatch=False,
        )
        asyncio.run(
            watch(
                f"ws://127.0.0.1:{port}/ws/training/runs/{warm.pk}/?after=0",
                cookie,
                f"http://127.0.0.1:{port}",
                lambda: _dispatch(warm.pk, warm.queue, warm.celery_task_id),
            )
        )

        baseline = asyncio.run(channel_layer_baseline())
        run = training_run_start(
            experiment=experiment, framework="torch", model_type="mlp", params=params, user=user, dispatch=False
        )
        log(
            f"run {run.pk}: {args.epochs} epochs, watching ws/training/runs/{run.pk}/ through the web process on :{port}"
        )
        latencies = asyncio.run(
            watch(
                f"ws://127.0.0.1:{port}/ws/training/runs/{run.pk}/?after=0",
                cookie,
                f"http://127.0.0.1:{port}",
                lambda: _dispatch(run.pk, run.queue, run.celery_task_id),
            )
        )

        if args.load_connections:
            from bench.serving import fixtures

            log("training and deploying the scikit-learn model the load generator calls")
            token = fixtures.build()["token"]
            run = training_run_start(
                experiment=experiment, framework="torch", model_type="mlp", params=params, user=user, dispatch=False
            )
            load = start_prediction_load(port, token, args.load_connections)
            time.sleep(3)  # the load is at full speed before the run starts
            log(
                f"run {run.pk} watched while {args.load_connections} connections send predictions to the same web process"
            )
            under_load = asyncio.run(
                watch(
                    f"ws://127.0.0.1:{port}/ws/training/runs/{run.pk}/?after=0",
                    cookie,
                    f"http://127.0.0.1:{port}",
                    lambda: _dispatch(run.pk, run.queue, run.celery_task_id),
                )
            )
            load_result, _ = load.communicate(input="", timeout=60)  # closing stdin ends it after its round
            log(f"prediction load during that run: {load_result.strip()}")

    ms = [v * 1000 for v in latencies]
    base_ms = [v * 1000 for v in baseline]
    print()
    p95 = summary("worker -> WebSocket client", ms)
    b95 = summary("channel-layer round trip", base_ms)
    print(f"ratio p95 / baseline p95 = {p95 / b95:.1f}")
    print(f"target p95 <= 100 ms (idle host): {'met' if p95 <= 100 and len(ms) >= 200 else 'NOT met'}")
    if under_load is not None:
        loaded = summary("same, predictions at load", [v * 1000 for v in under_load])
        print(f"ratio p95 under load / p95 idle = {loaded / p95:.1f}")
        print(f"target p95 <= 100 ms under load: {'met' if loaded <= 100 and len(under_load) >= 200 else 'NOT met'}")


if __name__ == "__main__":
    main()
