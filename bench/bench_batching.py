"""Micro-batching benchmark: the demo's history model (price-direction: 104 rows of one ticker per
request) served by the portal's web process with batching on vs off, and the lean request path's
cost per request against the DataFrame path, in one invocation.

    .venv/bin/python bench/bench_batching.py [--workers 1] [--connections 32] [--seconds 10]
                                             [--framework torch|sklearn] [--port 18250]

Needs PostgreSQL (DATABASE_URL's server; the bench creates and drops its own database) and Redis
(REDIS_URL; the bench uses its own keys).

What it does:
  1. generates the demo prices (5 tickers x 600 days) and trains the demo's price-direction model
     on its feature spec (price-features-v1, 104 rows of history) through the portal's own pipeline
     (--framework: the demo's default torch MLP, or its scikit-learn gradient boosting), and deploys it;
  2. starts the web process as the Procfile does (mlops_portal.serve, --workers uvicorn workers) and
     drives it with bench/serving/loadgen.py at --connections: first with the deployment's
     max_batch_size = 1 (batching off: one model call per request), then with the default
     (batching on), switching through deployment_batching_set and waiting until every web process
     acknowledged the new routing generation; prints req/s, p50, p99, the mean batch size seen
     (mlops_prediction_batch_requests) and the ratio (target >= 2 at 32 connections);
  3. in this process: the median cost of one request's check + features + model call on the lean
     path (no DataFrame) and on the DataFrame path (the registry's LoadedModel, which reads a
     DataFrame as before), for a history request and for a one-row table request, and the ratios.
Ratios compare figures measured in this same invocation.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_serving import admin_sql, database_urls  # noqa: E402
from bench.serving.loadgen import build_request, load  # noqa: E402
from bench.serving.servers import Servers, wait_http  # noqa: E402

NAME = "bench-history"
PLAIN = "bench-plain"


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def build(framework: str) -> dict:
    """The demo's history model and a one-row table model, deployed; returns what the runs need."""
    from django.core.files.base import ContentFile

    from apps.core.roles import ANALYST, ML_STAFF
    from apps.core.services import api_token_create, user_with_role_ensure
    from apps.datasets.demo import PRICE_FEATURES_V1, demo_price_csv
    from apps.datasets.services import dataset_create, dataset_version_create, feature_spec_create
    from apps.deployments.services.model_deployment_service import deployment_create
    from apps.training.demo import DEMO_RUNS
    from apps.training.services.experiments import experiment_create
    from bench.serving import fixtures

    staff = user_with_role_ensure(username="bench-staff", password="bench-staff-pass-123", role=ML_STAFF)
    client = user_with_role_ensure(username="bench-client", password="bench-client-pass-123", role=ANALYST)
    _, token = api_token_create(user=client, name="bench")

    prices = dataset_create(
        name="demo-prices",
        task="classification",
        target_column="close",
        time_column="date",
        entity_column="ticker",
        user=staff,
    )
    dataset_version_create(dataset=prices, file=ContentFile(demo_price_csv()), filename="prices.csv", user=staff)
    spec, _ = feature_spec_create(dataset=prices, name="price-features-v1", spec=PRICE_FEATURES_V1, user=staff)
    _, model_type, params = next(run for run in DEMO_RUNS if run[0] == framework)
    experiment = experiment_create(
        name="price-direction",
        dataset=prices,
        feature_spec=spec,
        user=staff,
        default_framework=framework,
        default_model_type=model_type,
    )
    history = fixtures._train(
        experiment=experiment, framework=framework, model_type=model_type, params=params, user=staff, seed=0
    )
    deployment_create(name=NAME, model_version=history, user=staff)

    table = dataset_create(name="bench-table", task="classification", target_column="label", user=staff)
    dataset_version_create(
        dataset=table, file=ContentFile(fixtures.table().to_csv(index=False).encode()), filename="table.csv", user=staff
    )
    identity, _ = feature_spec_create(dataset=table, name="identity", spec=fixtures.IDENTITY_SPEC, user=staff)
    plain_experiment = experiment_create(
        name="bench-plain",
        dataset=table,
        feature_spec=identity,
        user=staff,
        default_framework="sklearn",
        default_model_type="linear",
    )
    plain = fixtures._train(
        experiment=plain_experiment, framework="sklearn", model_type="linear", params={}, user=staff, seed=0
    )
    deployment_create(name=PLAIN, model_version=plain, user=staff)
    return {
        "token": token,
        "history_rows": int(history.signature["history_rows"]),
        "columns": list(history.signature["raw_columns"]),
    }


def history_bodies(history_rows: int, columns: list[str], n: int = 64) -> list[dict]:
    """n requests: one ticker's last `history_rows` rows each, windows ending on different days."""
    import io

    import pandas as pd

    from apps.datasets.demo import demo_price_csv

    frame = pd.read_csv(io.BytesIO(demo_price_csv()))
    tickers = sorted(frame.ticker.unique())
    bodies = []
    for i in range(n):
        rows = frame[frame.ticker == tickers[i % len(tickers)]]
        end = len(rows) - 1 - (i // len(tickers)) * 3
        window = rows.iloc[end - history_rows : end][columns]
        bodies.append({"dataframe_records": json.loads(window.to_json(orient="records"))})
    return bodies


def set_batching(max_batch_size: int, timeout: float = 30.0) -> None:
    """Changes the deployment's batching and waits until every live web process serves it."""
    from apps.deployments.models import Deployment
    from apps.deployments.notify import deployment_stamp, routing_acknowledgement
    from apps.deployments.services.batching import deployment_batching_set

    deployment = deployment_batching_set(deployment=Deployment.objects.get(name=NAME), max_batch_size=max_batch_size)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ack = routing_acknowledgement(
            name=NAME, stamp=deployment_stamp(deployment.created_at), generation=deployment.generation
        )
        if ack["complete"] and ack["processes"]:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the web processes did not take max_batch_size={max_batch_size} within {timeout}s")


def batch_counts() -> tuple[int, int]:
    """(requests, batches) counted so far by every web process (they push once a second)."""
    from apps.deployments.serving.batchstats import read_histogram

    _, total, count = read_histogram()
    return total, count


def lean_vs_dataframe(history_body: dict, plain_body: dict) -> None:
    """Median cost of check + features + model call for one request, both paths, in this process."""
    from apps.deployments.serving.inputs import check_columns, parse_mlflow
    from apps.deployments.serving.predict import _run_model, max_batch_rows, model_inputs
    from apps.deployments.serving.state import serving_state

    def timed(fn, n):
        for _ in range(20):
            fn()
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - started) * 1e6)
        return statistics.median(samples)

    for label, name, body, n in (
        ("history (104 rows)", NAME, history_body, 300),
        ("table (1 row)", PLAIN, plain_body, 3000),
    ):
        table = serving_state.table(name)
        served = next(iter(table.versions.values()))
        loaded = served.loaded
        task_is_classification = served.task == "classification"

        def checked():
            return check_columns(
                parse_mlflow(body, served.spec)[0], served.spec, known=table.known_columns, max_rows=max_batch_rows()
            )

        def lean():
            model_input = model_inputs(served, [checked()])[0]
            return _run_model(served, model_input)

        def through_dataframe():
            frame = checked().to_frame()  # what check_columns returned before: a DataFrame
            if task_is_classification:
                return loaded.predict_proba_raw(frame)
            return loaded.predict_raw(frame)

        before, after = timed(through_dataframe, n), timed(lean, n)
        print(
            f"lean     {label:20s}: DataFrame path {before:8.1f} us/request, lean path {after:8.1f} us/request,"
            f" ratio {before / after:5.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--framework", default="torch", choices=("torch", "sklearn"))
    parser.add_argument("--port", type=int, default=18250)
    parser.add_argument(
        "--gc-threshold",
        default="",
        help="the web process's gc thresholds (WEB_GC_THRESHOLD), e.g. 700,10,10 for CPython's defaults",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and temporary files")
    args = parser.parse_args()

    db_name = f"bench_batching_{uuid.uuid4().hex[:8]}"
    admin_url, db_url = database_urls(db_name)
    work = Path(tempfile.mkdtemp(prefix="bench-batching-"))
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "MEDIA_ROOT": str(work / "media"),
        "DB_CONN_MAX_AGE": "600",
        "API_THROTTLE_PREDICT": "100000000/minute",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    }
    if args.gc_threshold:
        env["WEB_GC_THRESHOLD"] = args.gc_threshold
    servers = Servers()
    admin_sql(admin_url, f'CREATE DATABASE "{db_name}"')
    try:
        log(f"database {db_name}: migrating")
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        os.environ.update(
            {k: env[k] for k in ("DATABASE_URL", "MEDIA_ROOT", "DB_CONN_MAX_AGE", "REDIS_URL", "LOG_LEVEL")}
        )
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlops_portal.settings")
        import django

        django.setup()
        from apps.deployments.serving.batchstats import KEY
        from apps.core.redis_client import get_redis

        get_redis().delete(KEY)
        log(f"training the demo's price-direction model ({args.framework}) through the portal's pipeline")
        built = build(args.framework)
        token = built["token"]
        auth = {"Authorization": f"Bearer {token}"}
        port = args.port
        servers.procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlops_portal.serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    str(args.workers),
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
                stdout=open(work / "portal.log", "ab"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        wait_http(f"http://127.0.0.1:{port}/v2/models/{NAME}/ready", timeout=120, headers=auth)
        log(f"portal: mlops_portal.serve, {args.workers} uvicorn worker(s), on port {port}")

        bodies = history_bodies(built["history_rows"], built["columns"])
        check = json.dumps(bodies[0]).encode()
        import urllib.request

        with urllib.request.urlopen(
            urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/deployments/{NAME}/predict",
                check,
                {**auth, "Content-Type": "application/json"},
            )
        ) as answer:
            log(f"one request: {answer.read()[:200]!r}")
        requests = [
            build_request(
                "127.0.0.1",
                port,
                f"/api/v1/deployments/{NAME}/predict",
                body,
                {**auth, "X-Routing-Key": f"customer-{i}"},
            )
            for i, body in enumerate(bodies)
        ]
        results = {}
        for label, size in (("off (max_batch_size=1)", 1), ("on (max_batch_size=256)", 256)):
            set_batching(size)
            load("127.0.0.1", port, requests, connections=args.connections, duration_s=2)  # warm-up
            time.sleep(1.2)  # the warm-up's batch counts reach Redis
            before = batch_counts()
            result = load("127.0.0.1", port, requests, connections=args.connections, duration_s=args.seconds)
            time.sleep(1.2)
            after = batch_counts()
            served, batches = after[0] - before[0], after[1] - before[1]
            results[size] = result
            print(
                f"batching {label:24s} c={args.connections}: {result.rps:8.1f} req/s  p50 {result.percentile(50):7.2f} ms"
                f"  p99 {result.percentile(99):7.2f} ms  errors {result.errors}  mean batch {served / max(1, batches):5.1f}"
                f" requests"
            )
        ratio = results[256].rps / results[1].rps if results[1].rps else float("nan")
        print(f"batching ratio on/off c={args.connections}: throughput {ratio:5.2f}x (target >= 2)")

        plain_body = {"dataframe_split": {"columns": [f"f{i}" for i in range(8)], "data": [[0.1] * 8]}}
        lean_vs_dataframe(bodies[0], plain_body)
    except BaseException:
        for path in sorted(work.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-25:]
            print(f"--- last lines of {path.name}:\n" + "\n".join(lines), file=sys.stderr)
        raise
    finally:
        servers.stop()
        if not args.keep:
            from django.db import connections

            connections.close_all()
            admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept database {db_name} and {work}")


if __name__ == "__main__":
    main()
