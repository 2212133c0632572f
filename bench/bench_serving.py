"""Serving benchmark: the portal against MLServer and `mlflow models serve`, same models, same
machine, same number of worker processes, one run.

    .venv/bin/python bench/bench_serving.py [--workers 2] [--connections 32,128] [--seconds 15]
                                            [--soak-seconds 60] [--soak-connections 100]

Needs PostgreSQL (DATABASE_URL's server; the bench creates and drops its own database) and Redis
(REDIS_URL; the bench uses its own keys). The first run creates bench/.venv-mlflow and
bench/.venv-mlserver (gitignored) with MLflow, MLServer + mlserver-sklearn and the portal's
versions of scikit-learn and torch; neither is ever installed into the project's venv.

What it does:
  1. trains two scikit-learn versions (split 50/50) and a PyTorch MLP through the portal's own
     pipeline, deploys them, and exports the same artifacts as MLflow models and as an MLServer
     model repository (scikit-learn only; `parallel_workers` = --workers);
  2. runs the portal (its web process: N uvicorn workers, a socket each), then MLflow (N uvicorn
     workers), then MLServer (N parallel workers), one comparison server at a time, and drives each
     with the same keep-alive load generator (bench/serving/loadgen.py) at each connection count:
     req/s, p50, p99 and the ratios (portal V2 against MLServer V2, portal REST against MLflow);
     portal requests carry a sticky routing key and every answer is logged;
  3. prints the portal's added latency over a raw in-process predict of one row;
  4. soaks the portal (default 60 s at 100 connections): errors, and served vs logged predictions.
Access logs are off on both servers. Ratios compare figures measured in this same invocation.
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

from bench.serving import fixtures  # noqa: E402
from bench.serving.loadgen import build_request, load  # noqa: E402
from bench.serving.servers import Servers, ensure_mlflow_venv, ensure_mlserver_venv, wait_http  # noqa: E402


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def database_urls(name: str) -> tuple[str, str]:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not base.startswith("postgres"):
        raise SystemExit("bench_serving needs PostgreSQL: set DATABASE_URL=postgres://...")
    server = base.rsplit("/", 1)[0]
    return f"{server}/postgres", f"{server}/{name}"


def admin_sql(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql)


def rows_body(rows) -> dict:
    return {"dataframe_split": {"columns": fixtures.FEATURES, "data": rows}}


def sample_rows(n: int, seed: int) -> list[list[float]]:
    frame = fixtures.table(n=n, seed=seed)
    return frame[fixtures.FEATURES].values.tolist()


def v2_portal_body(row) -> dict:
    """The Open Inference Protocol as the portal reads it: one tensor per feature column."""
    return {
        "inputs": [
            {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
            for name, value in zip(fixtures.FEATURES, row)
        ]
    }


def v2_mlserver_body(row) -> dict:
    """The same protocol as MLServer's scikit-learn runtime reads it: one 2-D tensor."""
    return {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": [row]}]}


def report(framework: str, results: dict) -> None:
    """One line per server and connection count, then the ratios the issue sets as targets."""
    for (server, connections), r in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
        print(
            f"{framework:8s} {server:18s} c={connections:<4d}: {r.rps:8.1f} req/s  p50 {r.percentile(50):7.2f} ms"
            f"  p99 {r.percentile(99):7.2f} ms  errors {r.errors}"
        )
    for connections in sorted({c for _, c in results}):
        portal = results[("portal REST", connections)]
        for other, throughput_target in (("mlserver V2", 1.0), ("mlflow", 2.0)):
            theirs = results.get((other, connections))
            if theirs is None:
                continue
            mine = results.get(("portal V2", connections), portal) if other == "mlserver V2" else portal
            throughput = mine.rps / theirs.rps if theirs.rps else float("nan")
            p99 = mine.percentile(99) / theirs.percentile(99)
            print(
                f"{framework:8s} ratio c={connections:<4d} portal/{other:11s}: throughput {throughput:5.2f}"
                f" (target >= {throughput_target:g}), p99 {p99:5.2f} (target <= 1)"
            )


def same_predictions(port_portal, port_mlflow, deployment, token, rows) -> tuple[bool, str]:
    import urllib.request

    body = json.dumps(rows_body(rows)).encode()
    portal = urllib.request.Request(
        f"http://127.0.0.1:{port_portal}/api/v1/deployments/{deployment}/predict",
        body,
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}", "X-Routing-Key": "parity"},
    )
    mlflow = urllib.request.Request(
        f"http://127.0.0.1:{port_mlflow}/invocations", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(portal) as a, urllib.request.urlopen(mlflow) as b:
        mine, theirs = json.loads(a.read()), json.loads(b.read())
    return [int(p) for p in mine["predictions"]] == [int(p) for p in theirs["predictions"]], mine["model_version"]


def same_predictions_mlserver(port_portal, port_mlserver, token, rows) -> tuple[bool, str]:
    """MLServer serves the portal's version A (as MLflow does): parity holds when the sticky key
    routes to A, and the version that answered is printed beside it."""
    import urllib.request

    body = json.dumps(rows_body(rows)).encode()
    portal = urllib.request.Request(
        f"http://127.0.0.1:{port_portal}/api/v1/deployments/bench-sklearn/predict",
        body,
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}", "X-Routing-Key": "parity"},
    )
    theirs = {"inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": rows}]}
    mlserver = urllib.request.Request(
        f"http://127.0.0.1:{port_mlserver}/v2/models/bench-sklearn/infer",
        json.dumps(theirs).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(portal) as a, urllib.request.urlopen(mlserver) as b:
        mine, answer = json.loads(a.read()), json.loads(b.read())
    return [int(p) for p in mine["predictions"]] == [int(p) for p in answer["outputs"][0]["data"]], mine[
        "model_version"
    ]


def added_latency(token: str, port: int, version_id: int) -> None:
    """Raw in-process predict of one row vs the portal's serving path in-process and over HTTP."""
    import pandas as pd

    from apps.deployments.services.model_deployment_service import predict
    from apps.registry.loading import load_model_version

    row = sample_rows(1, seed=7)[0]
    frame = pd.DataFrame([row], columns=fixtures.FEATURES)
    loaded = load_model_version(version_id)

    def timed(fn, n):
        for _ in range(50):
            fn()
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    raw = timed(lambda: loaded.predict_raw(frame), 2000)
    body = rows_body([row])
    raw_body = json.dumps(body).encode()
    service = timed(
        lambda: predict(deployment="bench-sklearn", body=body, raw_body=raw_body, routing_key="latency"), 2000
    )
    request = [
        build_request(
            "127.0.0.1",
            port,
            "/api/v1/deployments/bench-sklearn/predict",
            body,
            {"Authorization": f"Bearer {token}", "X-Routing-Key": "latency"},
        )
    ]
    http = load("127.0.0.1", port, request, connections=1, total=1500)
    http_p50 = http.percentile(50)
    print(f"latency  raw in-process predict_raw (1 row)      p50 {raw:7.3f} ms")
    print(
        f"latency  portal serving path in-process           p50 {service:7.3f} ms  added {service - raw:6.3f} ms"
        " (route, parse, check, predict, log; target <= 1 ms)"
    )
    print(
        f"latency  portal over HTTP, one connection          p50 {http_p50:7.3f} ms  added {http_p50 - raw:6.3f} ms"
        " (plus HTTP server, Django, auth, throttle)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", default="32,128", help="comma-separated connection counts")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--soak-seconds", type=float, default=60.0)
    parser.add_argument("--soak-connections", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the database and temporary files")
    args = parser.parse_args()

    connection_counts = [int(c) for c in args.connections.split(",")]
    mlflow_python = ensure_mlflow_venv(log)
    mlserver_python = ensure_mlserver_venv(log)
    db_name = f"bench_serving_{uuid.uuid4().hex[:8]}"
    admin_url, db_url = database_urls(db_name)
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
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
        log("training the benchmark models through the portal's pipeline")
        built = fixtures.build()
        token = built["token"]
        exported = work / "mlflow-models"
        subprocess.run(
            [
                str(mlflow_python),
                str(ROOT / "bench" / "serving" / "mlflow_export.py"),
                built["artifacts"]["sklearn"],
                built["artifacts"]["torch"],
                str(exported),
            ],
            check=True,
            env={**os.environ, "MLFLOW_TRACKING_URI": f"file://{work / 'mlruns'}"},
        )
        mlserver_repository = work / "mlserver-models"
        subprocess.run(
            [
                str(mlserver_python),
                str(ROOT / "bench" / "serving" / "mlserver_export.py"),
                built["artifacts"]["sklearn"],
                str(mlserver_repository),
                str(args.workers),
            ],
            check=True,
        )

        portal_port = servers.portal(workers=args.workers, env=env, log_path=work / "portal.log")
        auth = {"Authorization": f"Bearer {token}"}
        for deployment in ("bench-sklearn", "bench-torch"):
            wait_http(f"http://127.0.0.1:{portal_port}/v2/models/{deployment}/ready", timeout=120, headers=auth)
        log(f"portal: mlops_portal.serve, {args.workers} uvicorn workers, on port {portal_port}")

        bodies = sample_rows(64, seed=11)

        def measure(results, server, port, requests):
            load("127.0.0.1", port, requests, connections=max(connection_counts), duration_s=2)  # warm-up
            for connections in connection_counts:
                results[(server, connections)] = load(
                    "127.0.0.1", port, requests, connections=connections, duration_s=args.seconds
                )

        for framework, deployment in (("sklearn", "bench-sklearn"), ("torch", "bench-torch")):
            results: dict = {}
            measure(
                results,
                "portal REST",
                portal_port,
                [
                    build_request(
                        "127.0.0.1",
                        portal_port,
                        f"/api/v1/deployments/{deployment}/predict",
                        rows_body([row]),
                        {**auth, "X-Routing-Key": f"customer-{i}"},
                    )
                    for i, row in enumerate(bodies)
                ],
            )
            if framework == "sklearn":
                measure(
                    results,
                    "portal V2",
                    portal_port,
                    [
                        build_request(
                            "127.0.0.1",
                            portal_port,
                            f"/v2/models/{deployment}/infer",
                            v2_portal_body(row),
                            {**auth, "X-Routing-Key": f"customer-{i}"},
                        )
                        for i, row in enumerate(bodies)
                    ],
                )
            # One comparison server at a time keeps the cores fair.
            mlflow_port, mlflow_proc = servers.mlflow(
                python=mlflow_python,
                model_dir=exported / framework,
                workers=args.workers,
                log_path=work / f"mlflow-{framework}.log",
            )
            wait_http(f"http://127.0.0.1:{mlflow_port}/ping", timeout=120, proc=mlflow_proc)
            parity, served_by = same_predictions(portal_port, mlflow_port, deployment, token, sample_rows(50, seed=3))
            log(
                f"{framework}: mlflow on port {mlflow_port}; same predictions for 50 rows: {parity} (portal version {served_by})"
            )
            measure(
                results,
                "mlflow",
                mlflow_port,
                [build_request("127.0.0.1", mlflow_port, "/invocations", rows_body([row])) for row in bodies],
            )
            servers.stop_one(mlflow_proc)
            if framework == "sklearn":
                mlserver_port, mlserver_proc = servers.mlserver(
                    python=mlserver_python, repository=mlserver_repository, log_path=work / "mlserver.log"
                )
                wait_http(
                    f"http://127.0.0.1:{mlserver_port}/v2/models/{deployment}/ready", timeout=120, proc=mlserver_proc
                )
                parity, served_by = same_predictions_mlserver(
                    portal_port, mlserver_port, token, sample_rows(50, seed=3)
                )
                log(
                    f"sklearn: mlserver on port {mlserver_port}, {args.workers} parallel workers; same predictions "
                    f"for 50 rows: {parity} (portal version {served_by})"
                )
                measure(
                    results,
                    "mlserver V2",
                    mlserver_port,
                    [
                        build_request(
                            "127.0.0.1", mlserver_port, f"/v2/models/{deployment}/infer", v2_mlserver_body(row)
                        )
                        for row in bodies
                    ],
                )
                servers.stop_one(mlserver_proc)
            report(framework, results)

        added_latency(token, portal_port, built["sklearn_version_id"])

        from apps.monitoring.models import PredictionLog
        from apps.monitoring.services.logbuffer import prediction_logs_flush

        prediction_logs_flush()
        before = PredictionLog.objects.count()
        soak_requests = [
            build_request(
                "127.0.0.1",
                portal_port,
                "/api/v1/deployments/bench-sklearn/predict",
                rows_body([row]),
                {**auth, "X-Routing-Key": f"soak-{i}"},
            )
            for i, row in enumerate(sample_rows(128, seed=13))
        ]
        log(f"soak: {args.soak_seconds:g} s at {args.soak_connections} connections")
        soak = load(
            "127.0.0.1",
            portal_port,
            soak_requests,
            connections=args.soak_connections,
            duration_s=args.soak_seconds,
            keep_bodies=True,
        )
        served = {json.loads(body)["request_id"] for body in soak.bodies if body.startswith(b'{"predictions"')}
        while prediction_logs_flush():
            pass
        logged = PredictionLog.objects.count() - before
        logged_ids = set(
            str(r) for r in PredictionLog.objects.order_by("-id")[:logged].values_list("request_id", flat=True)
        )
        print(
            f"soak     portal : {soak.count} requests in {soak.elapsed_s:.1f}s ({soak.rps:.1f} req/s), "
            f"errors {soak.errors}, p50 {soak.percentile(50):.2f} ms, p99 {soak.percentile(99):.2f} ms"
        )
        print(f"soak     logs   : served {len(served)}, logged {logged}, lost {len(served - logged_ids)} (target 0)")
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
