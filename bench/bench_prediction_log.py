"""Prediction-log cost on the request path: the in-process buffer + writer thread against the Redis
list it replaced, both measured in this one invocation on the same lines, rate and batches.

    .venv/bin/python bench/bench_prediction_log.py [--rate 2000] [--seconds 3] [--batch 8]

Needs PostgreSQL (the server of DATABASE_URL; the bench creates and drops its own database) and
`redis-server` on the PATH: it starts a private one on a free port, so no other flusher on a shared
Redis can drain its list. One scikit-learn version is trained and deployed so the lines are real
ones (a demo-like line: 8 numeric features with 5 drift rows each, one prediction, probabilities).

Both sides push `--rate` answers/s in batches of `--batch` (the fast path's one call per event-loop
batch) for `--seconds`:
- old: the previous `prediction_log_push` (JSON lines RPUSHed and two HINCRBY per answer in one
  Redis pipeline, on the request path); its flusher ran in a Celery worker and is timed apart;
- new: `prediction_log_push` (a deque append under a lock), with this process's writer thread
  inserting into PostgreSQL meanwhile, so its GIL share lands on the request path as it would.
Prints the time spent inside the push call per answer (mean, p99 per call) and new/old; the CPU
per answer of the whole path to PostgreSQL (push + writer in this process, vs push + the old
flusher); the most lines ever waiting in the buffer at that rate (what a SIGKILL would lose with
the database up) and how long after the last push the buffer was empty; and the memory per
buffered line. Target: request-path ratio new/old <= 0.2.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline_overhead import Environment, log  # noqa: E402


def deploy():
    """One trained scikit-learn version serving "bench-log" (the portal's own services)."""
    import io

    import numpy as np
    import pandas as pd
    from django.core.files.base import ContentFile

    from apps.core.roles import ML_STAFF
    from apps.core.services import user_with_role_ensure
    from apps.datasets.services import dataset_create, dataset_version_create, feature_spec_create
    from apps.deployments.services.model_deployment_service import deployment_create
    from apps.training.services.experiments import experiment_create
    from apps.training.services.training_pipeline import training_run_execute, training_run_start

    staff = user_with_role_ensure(username="bench-staff", password="bench-staff-pass-123", role=ML_STAFF)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 8)).round(4), columns=[f"f{i}" for i in range(8)])
    frame["label"] = (frame["f0"] - frame["f1"] > 0).astype(int)
    dataset = dataset_create(name="bench-log", task="classification", target_column="label", user=staff)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    dataset_version_create(dataset=dataset, file=ContentFile(buffer.getvalue().encode()), filename="t.csv", user=staff)
    spec, _ = feature_spec_create(dataset=dataset, name="identity", spec={"version": 1, "steps": []}, user=staff)
    experiment = experiment_create(
        name="bench-log",
        dataset=dataset,
        feature_spec=spec,
        user=staff,
        default_framework="sklearn",
        default_model_type="linear",
    )
    run = training_run_start(
        experiment=experiment, framework="sklearn", model_type="linear", params={}, user=staff, seed=0, dispatch=False
    )
    run = training_run_execute(run_id=run.pk)
    version = run.model_versions.get()
    return deployment_create(name="bench-log", model_version=version, user=staff), version


def lines(count: int, deployment, version) -> list[dict]:
    from apps.monitoring.services.logbuffer import log_entry

    return [
        log_entry(
            request_id=str(uuid.uuid4()),
            deployment_id=deployment.pk,
            version_id=version.pk,
            shadow=False,
            status="ok",
            latency_ms=1.2345,
            n_rows=1,
            inputs_hash=uuid.uuid4().hex,
            output=[1],
            routing_key_hash=uuid.uuid4().hex,
            features={f"f{i}": [0.1234 * j for j in range(5)] for i in range(8)},
            probabilities=[[0.2815334, 0.7184666]],
        )
        for _ in range(count)
    ]


def old_push(*, entries: list[dict], labels: list[tuple[str, str]]) -> None:
    """The pre-writer prediction_log_push, as it was (one Redis pipeline per call)."""
    from apps.core.redis_client import get_redis
    from apps.monitoring.services.logbuffer import COUNT_KEY, LATENCY_SUM_KEY, PENDING_KEY, counter_field

    pipe = get_redis().pipeline(transaction=False)
    pipe.rpush(PENDING_KEY, *[json.dumps(entry, separators=(",", ":")) for entry in entries])
    for entry, (deployment, version) in zip(entries, labels):
        pipe.hincrby(COUNT_KEY, counter_field(deployment, version, entry["st"], bool(entry["s"])), 1)
        pipe.hincrbyfloat(
            LATENCY_SUM_KEY, counter_field(deployment, version, entry["st"], bool(entry["s"])), entry["l"]
        )
    pipe.execute()


def old_flush(batch_size: int = 2000) -> int:
    """The pre-writer flusher's work (in a Celery worker): LRANGE, json.loads, a model instance per
    line, the visibility queries, bulk_create, LTRIM (its Redis lock aside)."""
    from django.db import transaction

    from apps.deployments.models import Deployment
    from apps.monitoring.models import PredictionLog
    from apps.core.redis_client import get_redis
    from apps.monitoring.services.logbuffer import PENDING_KEY, _model
    from apps.registry.models import ModelVersion

    client, moved = get_redis(), 0
    while raw := client.lrange(PENDING_KEY, 0, batch_size - 1):
        models = [_model(json.loads(line)) for line in raw]
        deployments = set(
            Deployment.objects.filter(pk__in={m.deployment_id for m in models}).values_list("pk", flat=True)
        )
        versions = set(
            ModelVersion.objects.filter(pk__in={m.model_version_id for m in models}).values_list("pk", flat=True)
        )
        kept = [m for m in models if m.deployment_id in deployments and m.model_version_id in versions]
        with transaction.atomic():
            PredictionLog.objects.bulk_create(kept, ignore_conflicts=True, batch_size=1000)
        client.ltrim(PENDING_KEY, len(raw), -1)
        moved += len(raw)
    return moved


def paced(push, batches: list[list[dict]], rate: float, batch: int, watch=None) -> dict:
    """Calls push(entries=batch, labels=labels) at `rate` answers/s; the time inside each call and, with `watch`,
    the most lines it reported waiting."""
    labels = [("bench-log", "1")] * batch
    interval = batch / rate
    calls, most = [], 0
    cpu, start = time.process_time(), time.perf_counter()
    for i, entries in enumerate(batches):
        slot = start + i * interval
        now = time.perf_counter()
        if slot > now:
            time.sleep(slot - now)
        t0 = time.perf_counter()
        push(entries=entries, labels=labels)
        calls.append(time.perf_counter() - t0)
        if watch is not None:
            most = max(most, watch())
    return {
        "calls": calls,
        "answers": sum(len(b) for b in batches),
        "cpu": time.process_time() - cpu,
        "wall": time.perf_counter() - start,
        "most_waiting": most,
    }


def per_answer_us(result: dict) -> float:
    return sum(result["calls"]) / result["answers"] * 1e6


def p99_us(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] * 1e6


def line_bytes(sample: list[dict]) -> float:
    import copy
    from collections import deque

    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    held = deque(copy.deepcopy(sample))
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    size = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    del held
    return size / len(sample)


def private_redis() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=2000, help="answers per second, both sides")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=8, help="answers per push call (one event-loop batch)")
    args = parser.parse_args()

    redis_proc, os.environ["BENCH_REDIS_URL"] = private_redis()
    try:
        run(args)
    finally:
        redis_proc.terminate()


def run(args) -> None:
    with Environment("bench_predlog"):
        from apps.monitoring.models import PredictionLog
        from apps.monitoring.services import logbuffer

        deployment, version = deploy()
        count = int(args.rate * args.seconds) // args.batch * args.batch
        log(f"{count} answers at {args.rate:g}/s in batches of {args.batch}, each side")

        def batches():
            made = lines(count, deployment, version)
            return [made[i : i + args.batch] for i in range(0, count, args.batch)]

        old = paced(old_push, batches(), args.rate, args.batch)
        cpu = time.process_time()
        drained = old_flush()
        old_flush_cpu = time.process_time() - cpu
        assert drained == count, f"the old flusher moved {drained} of {count}"

        writer = logbuffer.process_writer()
        new_batches = batches()
        cpu = time.process_time()  # this process's threads: the pushes and the writer's inserts
        new = paced(logbuffer.prediction_log_push, new_batches, args.rate, args.batch, watch=writer.pending)
        last_push = time.perf_counter()
        while writer.pending():
            time.sleep(0.001)
        settle_ms = (time.perf_counter() - last_push) * 1000
        new_cpu_total = time.process_time() - cpu
        stored = PredictionLog.objects.count()
        assert stored == 2 * count, f"{stored} rows for {2 * count} answers"

        old_us, new_us = per_answer_us(old), per_answer_us(new)
        print(f"request path, per answer : old {old_us:7.2f} us   new {new_us:7.2f} us   new/old {new_us / old_us:.3f}")
        print(
            f"request path, p99 / call : old {p99_us(old['calls']):7.2f} us   new {p99_us(new['calls']):7.2f} us   "
            f"({args.batch} answers per call)"
        )
        old_total = (old["cpu"] + old_flush_cpu) / count * 1e6
        new_total = new_cpu_total / count * 1e6
        print(
            f"CPU to PostgreSQL/answer : old {old_total:7.2f} us (push {old['cpu'] / count * 1e6:.2f} in the web "
            f"process + flusher {old_flush_cpu / count * 1e6:.2f} in the worker)   new {new_total:7.2f} us (all in "
            f"the web process)   new/old {new_total / old_total:.3f}"
        )
        print(
            f"buffer at {args.rate:g}/s      : at most {new['most_waiting']} line(s) waiting (= {new['most_waiting'] / args.rate * 1000:.1f} ms "
            f"of answers, what a SIGKILL loses with the database up); empty {settle_ms:.1f} ms after the last push"
        )
        print(f"memory per buffered line : {line_bytes(lines(500, deployment, version)):.0f} bytes")


if __name__ == "__main__":
    main()
