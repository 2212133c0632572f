"""Parallel trials: one study of 8 equal-cost trials run with parallelism 1, then with parallelism 2,
on two Celery workers (one pool process each), through the real tuning services.

    .venv/bin/python bench/bench_tuning_parallel.py [--trials 8] [--seconds 4] [--threads 1]

Needs PostgreSQL (the server of DATABASE_URL; the bench creates and drops its own database) and Redis
(BENCH_TUNING_REDIS_URL, default redis://127.0.0.1:6379/14, flushed: it is the bench's own; not the
pipeline bench's db 12, so the two can run side by side without taking each other's tasks).

The workload is scikit-learn histogram gradient boosting on synthetic price features with a fixed
number of boosting iterations (early stopping off) and the learning rate searched, so every trial does
the same work; nothing sleeps. Iterations are calibrated so one trial trains for about --seconds.
--threads sets TRAINING_THREADS and OMP_NUM_THREADS of both workers (1: one trial per core).

Both studies use the same seed, so the random strategy hands them the same eight parameter sets.
Prints both wall times (study start to COMPLETED) and parallel / serial; the target is <= 0.6.
"""

import argparse
import os
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["BENCH_REDIS_URL"] = os.environ.get("BENCH_TUNING_REDIS_URL", "redis://127.0.0.1:6379/14")

from bench_pipeline_overhead import Environment, log, price_experiment  # noqa: E402

SPACE = [{"name": "learning_rate", "type": "float", "low": 0.02, "high": 0.3, "log": True}]


def fixed_params(iterations: int) -> dict:
    return {
        "max_iter": iterations,
        "stage_size": max(iterations // 5, 1),
        "patience": 1000,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 20,
    }


def run_study(
    experiment, user, *, name: str, trials: int, parallelism: int, iterations: int, timeout: float = 300
) -> tuple[float, object]:
    """Creates and starts a study, waits until it ends. Returns wall seconds and the study."""
    from apps.tuning.choices import STUDY_TERMINAL, StudyStatus
    from apps.tuning.models import TuningStudy
    from apps.tuning.services import study_create

    started = time.perf_counter()
    study = study_create(
        name=name,
        experiment=experiment,
        framework="sklearn",
        model_type="gradient_boosting",
        search_space=SPACE,
        fixed_params=fixed_params(iterations),
        strategy="random",
        seed=11,
        max_trials=trials,
        parallelism=parallelism,
        user=user,
        start=True,
    )
    while (
        status := TuningStudy.objects.filter(pk=study.pk).values_list("status", flat=True).get()
    ) not in STUDY_TERMINAL:
        if time.perf_counter() - started > timeout:
            trials_now = list(study.trials.values_list("number", "status", "run__status", "run__error_message"))
            raise SystemExit(f"study {name} still {status} after {timeout:.0f} s; trials: {trials_now}")
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    study.refresh_from_db()
    if status != StudyStatus.COMPLETED:
        raise SystemExit(f"study {name} ended {status}; see its events in the bench database")
    return elapsed, study


def trial_seconds(study) -> list[float]:
    return [(t.run.finished_at - t.run.started_at).total_seconds() for t in study.trials.select_related("run")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0, help="target training time of one trial")
    parser.add_argument("--threads", type=int, default=1, help="TRAINING_THREADS of the workers")
    parser.add_argument("--repeats", type=int, default=2, help="serial/parallel pairs, alternating")
    args = parser.parse_args()
    # TRAINING_THREADS caps the adapter's fit only; the pipeline's evaluation and prediction after
    # the fit run with OpenMP's default (every core), and two such processes on two cores spin against
    # each other (HistGradientBoosting predict is ~4x slower). OMP_NUM_THREADS caps those too.
    os.environ["TRAINING_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(args.threads)
    # A plain `kill` or `timeout` must still stop the workers and drop the database on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with Environment("bench_tuning") as env:
        for i in range(2):
            env.start_worker(f"bench-{uuid.uuid4().hex[:6]}-{i}@tuning")
        experiment, user = price_experiment(name="bench-tuning", tickers=5, days=800, params={"epochs": 1})

        log("warm-up and calibration: short studies (imports in both workers, dataset cached)")
        run_study(experiment, user, name="warm-up", trials=2, parallelism=2, iterations=20)
        # The difference of two probes is the cost of the iterations alone, without the fixed part
        # (data preparation, artifact) that every trial pays whatever its length.
        short, long = (
            statistics.median(
                trial_seconds(
                    run_study(experiment, user, name=f"calibrate-{n}", trials=2, parallelism=1, iterations=n)[1]
                )
            )
            for n in (40, 200)
        )
        per_iteration = max((long - short) / 160, 1e-4)
        iterations = int(min(5000, max(40, (args.seconds - short) / per_iteration + 40)))
        log(
            f"{per_iteration * 1000:.1f} ms per boosting iteration -> {iterations} iterations per trial "
            f"(~{args.seconds:g} s); TRAINING_THREADS={args.threads}"
        )

        serial, parallel = [], []
        trial_times = {1: [], 2: []}
        for i in range(args.repeats):
            for parallelism, times in ((1, serial), (2, parallel)):
                elapsed, study = run_study(
                    experiment,
                    user,
                    name=f"p{parallelism}-{i}",
                    trials=args.trials,
                    parallelism=parallelism,
                    iterations=iterations,
                )
                times.append(elapsed)
                runs = trial_seconds(study)
                trial_times[parallelism] += runs
                log(
                    f"parallelism {parallelism}: {elapsed:6.2f} s for {len(runs)} trials "
                    f"(trial training median {statistics.median(runs):.2f} s)"
                )

    serial_s, parallel_s = statistics.median(serial), statistics.median(parallel)
    ratio = parallel_s / serial_s
    print()
    print(f"parallelism 1 on 2 workers {serial_s:8.2f} s  ({args.trials} trials, median of {len(serial)})")
    print(f"parallelism 2 on 2 workers {parallel_s:8.2f} s  ({args.trials} trials, median of {len(parallel)})")
    print(f"ratio parallel/serial = {ratio:.3f}  (target <= 0.6: {'met' if ratio <= 0.6 else 'NOT met'})")
    # Two trials at once on two free cores each train as fast as one alone; if they are much slower,
    # something else was using the cores and the ratio measures that contention, not the tuning.
    slowdown = statistics.median(trial_times[2]) / statistics.median(trial_times[1])
    print(
        f"one trial's training time, parallel vs alone = {slowdown:.2f}"
        + ("  (> 1.2: the host's cores were busy with other work during the run)" if slowdown > 1.2 else "")
    )


if __name__ == "__main__":
    main()
