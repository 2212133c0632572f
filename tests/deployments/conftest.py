"""Real model versions for the deployment tests, trained through the datasets and training services.

Tiny tables (a few hundred rows) and scikit-learn's linear model, trained in-process by the same
`training_run_execute` the worker runs, so each version is a real, hash-verified registry artifact.
"""

import io
import math
import time

import numpy as np
import pandas as pd
import pytest
from django.core.files.base import ContentFile

from tests.brokers import free_port  # noqa: F401  (tests here import it from this module)

SCALE_SPEC = {"version": 1, "steps": [{"op": "scale", "columns": "*", "method": "standard"}]}
LAG_SPEC = {
    "version": 1,
    "steps": [
        {"op": "lags", "columns": ["x"], "lags": [1, 2]},
        {"op": "rolling", "columns": ["x"], "windows": [3], "stats": ["mean"]},
    ],
}


def classification_frame(n=300, seed=0, flip=0.0) -> pd.DataFrame:
    """y = 1 when 2*f1 - f2 > 0, with a share `flip` of labels flipped."""
    rng = np.random.default_rng(seed)
    f1, f2, f3 = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    y = (2 * f1 - f2 > 0).astype(int)
    flips = rng.random(n) < flip
    y[flips] = 1 - y[flips]
    return pd.DataFrame({"f1": f1.round(4), "f2": f2.round(4), "f3": f3.round(4), "label": y})


def regression_frame(n=300, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f1, f2 = rng.normal(size=n), rng.normal(size=n)
    return pd.DataFrame({"f1": f1.round(4), "f2": f2.round(4), "y": (3 * f1 - f2 + rng.normal(0, 0.1, n)).round(4)})


def history_frame(days=80, tickers=("AAA", "BBB"), seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for i, ticker in enumerate(tickers):
        x = np.cumsum(rng.normal(size=days)) + 10 * i
        frames.append(
            pd.DataFrame(
                {
                    "date": pd.date_range("2024-01-01", periods=days, freq="D").strftime("%Y-%m-%d"),
                    "ticker": ticker,
                    "x": x.round(4),
                    "y": (np.roll(x, -1) - x > 0).astype(int),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _csv(frame: pd.DataFrame) -> ContentFile:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return ContentFile(buffer.getvalue().encode())


def train_version(
    *,
    dataset_name,
    frame,
    task,
    target,
    spec,
    model_name,
    user=None,
    model_type="linear",
    params=None,
    time_column="",
    entity_column="",
    seed=0,
    framework="sklearn",
):
    """Dataset (version) → experiment → training run executed in-process → registered ModelVersion."""
    from apps.datasets.models import Dataset
    from apps.datasets.services import dataset_create, dataset_version_create, feature_spec_create
    from apps.registry.models import ModelVersion
    from apps.training.choices import RunStatus
    from apps.training.models import Experiment
    from apps.training.services.experiments import experiment_create
    from apps.training.services.training_pipeline import training_run_execute, training_run_start

    dataset = Dataset.objects.filter(name=dataset_name).first() or dataset_create(
        name=dataset_name,
        task=task,
        target_column=target,
        time_column=time_column,
        entity_column=entity_column,
        user=user,
    )
    version, _ = dataset_version_create(dataset=dataset, file=_csv(frame), filename=f"{dataset_name}.csv", user=user)
    feature_spec, _ = feature_spec_create(dataset=dataset, name=f"{dataset_name}-spec", spec=spec, user=user)
    experiment = Experiment.objects.filter(name=f"{model_name}-{dataset_name}").first() or experiment_create(
        name=f"{model_name}-{dataset_name}",
        dataset=dataset,
        feature_spec=feature_spec,
        user=user,
        default_framework=framework,
        default_model_type=model_type,
        registered_model_name=model_name,
    )
    run = training_run_start(
        experiment=experiment,
        framework=framework,
        model_type=model_type,
        params=params or {},
        user=user,
        seed=seed,
        dataset_version=version,
        dispatch=False,
    )
    run = training_run_execute(run_id=run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    return ModelVersion.objects.select_related("registered_model").get(training_run=run)


@pytest.fixture(autouse=True)
def _fresh_serving_state(fresh_serving_state):
    """Every deployments test starts from a cold serving cache (tests/conftest.py)."""
    yield


@pytest.fixture
def make_version(staff_user):
    def make(kind="classification", *, model_name="price-direction", seed=0, flip=0.0, params=None, n=300):
        if kind == "classification":
            return train_version(
                dataset_name=f"cls-{seed}-{int(flip * 100)}-{n}",
                frame=classification_frame(n=n, seed=seed, flip=flip),
                task="classification",
                target="label",
                spec=SCALE_SPEC,
                model_name=model_name,
                user=staff_user,
                params=params,
                seed=seed,
            )
        if kind == "regression":
            return train_version(
                dataset_name=f"reg-{seed}",
                frame=regression_frame(seed=seed),
                task="regression",
                target="y",
                spec=SCALE_SPEC,
                model_name=model_name,
                user=staff_user,
                params=params,
                seed=seed,
            )
        if kind == "history":
            return train_version(
                dataset_name=f"hist-{seed}",
                frame=history_frame(seed=seed),
                task="classification",
                target="y",
                spec=LAG_SPEC,
                model_name=model_name,
                user=staff_user,
                params=params,
                time_column="date",
                entity_column="ticker",
                seed=seed,
            )
        raise ValueError(kind)

    return make


@pytest.fixture
def champion(make_version):
    return make_version(seed=0)


@pytest.fixture
def challenger(make_version):
    """A second real classifier of "price-direction", trained on other data."""
    return make_version(seed=1)


@pytest.fixture
def two_versions(champion, challenger):
    return champion, challenger


@pytest.fixture
def deployment(champion, staff_user, django_capture_on_commit_callbacks):
    """ "price-direction" serving the champion at 100%."""
    from apps.deployments.services.model_deployment_service import deployment_create

    with django_capture_on_commit_callbacks(execute=True):
        return deployment_create(name="price-direction", model_version=champion, user=staff_user)


def record(f1=0.5, f2=-0.2, f3=0.1) -> dict:
    return {"f1": f1, "f2": f2, "f3": f3}


def wait_until(predicate, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


class WebProcess:
    """A real web process on the test database and Redis, started as the Procfile's `web` starts one
    (mlops_portal.serve: uvicorn workers): the portal's ASGI application, prediction fast path included."""

    def __init__(self, port: int, workers: int = 1):
        self.port = port
        self.workers = workers
        self.proc = None
        self.log_path = None

    def start(self, timeout: float = 60.0):
        import subprocess
        import sys
        import urllib.request

        from tests.conftest import ARTIFACTS, ROOT, worker_env

        self.log_path = ARTIFACTS / f"web-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlops_portal.serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            cwd=ROOT,
            env=worker_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the web process exited early, see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the web process did not answer within {timeout}s, see {self.log_path}")

    def stop(self):
        import os
        import signal

        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except Exception:
                os.killpg(self.proc.pid, signal.SIGKILL)
        if getattr(self, "_log", None):
            self._log.close()


@pytest.fixture
def web_processes(transactional_db):
    """Two web processes, started in parallel; stopped after the test."""
    import concurrent.futures

    processes = [WebProcess(free_port()), WebProcess(free_port())]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda p: p.start(), processes))
    yield processes
    for process in processes:
        process.stop()
