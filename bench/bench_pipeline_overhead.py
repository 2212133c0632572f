"""Pipeline overhead: the same PyTorch model, data and epochs trained by a plain script and through the
portal's pipeline (queue -> Celery worker -> seq-numbered logs and progress -> artifact -> registry).

    .venv/bin/python bench/bench_pipeline_overhead.py [--seconds 20] [--repeats 2]

Needs PostgreSQL (the server of DATABASE_URL; the bench creates and drops its own database) and Redis
(BENCH_REDIS_URL, default redis://127.0.0.1:6379/13; runs go to a queue named for this invocation,
so other workers on the same Redis never take them). It starts its own Celery worker (one pool
process) on that queue. Both sides run with the same TRAINING_THREADS (default: the
adapter's own default) on the same data, seed and epochs; the plain side also evaluates and saves the
model, as a script would. Epochs are calibrated so the plain job takes about --seconds.

Prints the plain and pipeline times (--repeats of each, alternating) and pipeline / plain of the
medians and of the best times (the best is the least disturbed by other load), plus CPU seconds of
both (the plain process; the worker process with all its threads, recorded per run), which other
load on the machine disturbs far less than wall time. The target is <= 1.05 (wall).
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlops_portal.settings")


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def database_urls(name: str) -> tuple[str, str]:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not base.startswith("postgres"):
        raise SystemExit("this benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    server = base.rsplit("/", 1)[0]
    return f"{server}/postgres", f"{server}/{name}"


def admin_sql(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql)


class Environment:
    """A private database, Redis db and media folder, migrated; worker and web processes share it."""

    def __init__(self, name: str):
        self.admin_url, self.url = database_urls(f"{name}_{uuid.uuid4().hex[:6]}")
        self.db_name = self.url.rsplit("/", 1)[1]
        self.media = tempfile.mkdtemp(prefix=f"{name}-media-")
        self.redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
        self.queue = f"bench-{uuid.uuid4().hex[:8]}"
        self.processes: list[subprocess.Popen] = []
        self.logs: list = []

    def __enter__(self):
        # A SIGTERM (timeout, kill) still drops the database and stops the worker.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        admin_sql(self.admin_url, f'CREATE DATABASE "{self.db_name}"')
        try:
            os.environ.update(self.env())
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=self.env(), check=True
            )
            import django

            django.setup()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def env(self) -> dict:
        return os.environ | {
            "DATABASE_URL": self.url,
            "REDIS_URL": self.redis_url,
            "MEDIA_ROOT": self.media,
            "PYTHONUNBUFFERED": "1",
            "PORTAL_MODE": "development",
            "TRAINING_CPU_QUEUE": self.queue,
            "TRAINING_GPU_QUEUE": self.queue,
        }

    def spawn(self, args: list[str], name: str) -> subprocess.Popen:
        log_file = open(Path(self.media) / f"{name}.log", "wb")
        self.logs.append(log_file)
        proc = subprocess.Popen(
            args, cwd=ROOT, env=self.env(), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(proc)
        return proc

    def start_worker(self, hostname: str, timeout: float = 120) -> subprocess.Popen:
        from mlops_portal.celery import app

        proc = self.spawn(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "mlops_portal",
                "worker",
                "-Q",
                self.queue,
                "-c",
                "1",
                "-n",
                hostname,
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
            ],
            "worker",
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the worker exited; see {self.media}/worker.log")
            if app.control.ping(destination=[hostname], timeout=0.5):
                return proc
        raise SystemExit("the worker did not answer in time")

    def __exit__(self, *exc):
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        for handle in self.logs:
            handle.close()
        from django.db import connections

        connections.close_all()
        admin_sql(self.admin_url, f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        return False


def price_experiment(*, name: str, tickers: int = 5, days: int = 600, params: dict):
    """The demo's price data and features, as an experiment trained with torch."""
    from django.core.files.base import ContentFile

    from apps.core.roles import ML_STAFF
    from apps.core.services import user_with_role_ensure
    from apps.datasets.demo import PRICE_FEATURES_V1
    from apps.datasets.generators import DEFAULT_TICKERS, generate_ohlcv
    from apps.datasets.services import dataset_create, dataset_version_create, feature_spec_create
    from apps.training.services.experiments import experiment_create

    user = user_with_role_ensure(username=f"bench-{uuid.uuid4().hex[:6]}", password=uuid.uuid4().hex, role=ML_STAFF)
    dataset = dataset_create(
        name=name, task="classification", target_column="close", time_column="date", entity_column="ticker"
    )
    names = list(DEFAULT_TICKERS[:tickers]) + [f"T{i:03d}" for i in range(max(0, tickers - len(DEFAULT_TICKERS)))]
    csv = generate_ohlcv(tickers=names, days=days, seed=7).to_csv(index=False).encode()
    dataset_version_create(dataset=dataset, file=ContentFile(csv), filename="prices.csv")
    spec, _ = feature_spec_create(dataset=dataset, name="price-features", spec=PRICE_FEATURES_V1)
    experiment = experiment_create(
        name=name,
        dataset=dataset,
        feature_spec=spec,
        default_framework="torch",
        default_model_type="mlp",
        default_params=params,
        user=user,
    )
    return experiment, user


def plain_job(experiment, params: dict, seed: int = 0) -> tuple[float, float]:
    """What a hand-written script does: load, prepare, fit, evaluate, save. Wall and CPU seconds."""
    from apps.datasets.preprocessing import prepare_training_data
    from apps.datasets.selectors import dataset_version_dataframe, dataset_version_latest
    from apps.frameworks import NullReporter, get_adapter

    started, cpu = time.perf_counter(), time.process_time()
    version = dataset_version_latest(dataset=experiment.dataset)
    df = dataset_version_dataframe(version=version)
    data = prepare_training_data(df=df, dataset=experiment.dataset, spec=experiment.feature_spec.spec, seed=seed)
    adapter = get_adapter("torch")
    trained = adapter.fit(
        data=data,
        task=experiment.task,
        model_type="mlp",
        params=params,
        seed=seed,
        device="cpu",
        reporter=NullReporter(),
        monitor=experiment.primary_metric,
    )
    trained.evaluate_data(data)
    with tempfile.TemporaryDirectory() as folder:
        adapter.save(trained, Path(folder) / "model")
    return time.perf_counter() - started, time.process_time() - cpu


def pipeline_job(experiment, user, params: dict, seed: int = 0, timeout: float = 900) -> tuple[float, object]:
    """Start through the service (queued on commit), wait for SUCCEEDED. Seconds and the run."""
    from apps.training.choices import RUN_TERMINAL, RunStatus
    from apps.training.models import TrainingRun
    from apps.training.services.training_pipeline import training_run_start

    started = time.perf_counter()
    run = training_run_start(
        experiment=experiment, framework="torch", model_type="mlp", params=params, seed=seed, user=user
    )
    while True:
        status = TrainingRun.objects.filter(pk=run.pk).values_list("status", flat=True).get()
        if status in RUN_TERMINAL:
            break
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"pipeline run {run.pk} still {status} after {timeout:g}s")
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    run.refresh_from_db()
    if status != RunStatus.SUCCEEDED:
        raise SystemExit(f"pipeline run {run.pk} ended {status}: {run.error_message}")
    return elapsed, run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="target length of the plain job")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tickers", type=int, default=20, help="size of the data: tickers x days rows")
    parser.add_argument("--days", type=int, default=1000)
    args = parser.parse_args()

    with Environment("bench_pipeline") as env:
        env.start_worker(f"bench-{uuid.uuid4().hex[:6]}@pipeline")
        base = {"hidden_size": 128, "num_layers": 2, "batch_size": 64, "dropout": 0.1}
        experiment, user = price_experiment(
            name="bench-overhead", tickers=args.tickers, days=args.days, params=base | {"epochs": 1}
        )

        log("warm-up: one short run each way (imports torch in the worker, caches the dataset)")
        pipeline_job(experiment, user, base | {"epochs": 2, "patience": 2})
        six = plain_job(experiment, base | {"epochs": 6, "patience": 6})[0]
        per_epoch = six / 6  # with the fixed costs spread over the epochs: errs towards a shorter job
        epochs = int(min(1000, max(5, round(args.seconds / per_epoch))))
        params = base | {"epochs": epochs, "patience": epochs}
        log(
            f"{per_epoch * 1000:.0f} ms per epoch -> {epochs} epochs for a ~{args.seconds:g} s job; "
            f"TRAINING_THREADS={os.environ.get('TRAINING_THREADS', 'default')}"
        )

        plain, piped, plain_cpu, piped_cpu = [], [], [], []
        for i in range(args.repeats):
            wall, cpu = plain_job(experiment, params)
            plain.append(wall)
            plain_cpu.append(cpu)
            log(f"plain    #{i + 1}: {wall:.2f} s (CPU {cpu:.2f} s)")
            elapsed, run = pipeline_job(experiment, user, params)
            piped.append(elapsed)
            piped_cpu.append(run.cpu_seconds)
            queue_wait = (run.started_at - run.queued_at).total_seconds()
            log(
                f"pipeline #{i + 1}: {elapsed:.2f} s (CPU in the worker {run.cpu_seconds:.2f} s, queue wait "
                f"{queue_wait:.2f} s, {run.log_seq} log lines, {run.epochs.count()} epoch rows, "
                f"version {run.model_versions.get().version})"
            )

    ratio = statistics.median(piped) / statistics.median(plain)
    best = min(piped) / min(plain)
    per_epoch_ms = (statistics.median(piped) - statistics.median(plain)) / epochs * 1000
    print()
    print(f"{epochs} epochs of {args.tickers * args.days} rows; pipeline cost per epoch (median) {per_epoch_ms:.1f} ms")
    print(
        f"plain script      median {statistics.median(plain):7.2f} s   best {min(plain):7.2f} s   ({len(plain)} runs)"
    )
    print(
        f"through pipeline  median {statistics.median(piped):7.2f} s   best {min(piped):7.2f} s   ({len(piped)} runs)"
    )
    print(
        f"CPU time          median {statistics.median(plain_cpu):7.2f} s plain, "
        f"{statistics.median(piped_cpu):7.2f} s pipeline worker process (all its threads)"
    )
    cpu_ratio = statistics.median(piped_cpu) / statistics.median(plain_cpu)
    print(
        f"ratio pipeline/plain: wall median {ratio:.3f}, wall best {best:.3f}, CPU median {cpu_ratio:.3f}  "
        f"(target: wall median <= 1.05: {'met' if ratio <= 1.05 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
