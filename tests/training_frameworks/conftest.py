"""Fixtures: the three synthetic datasets and one fitted model per contract combination."""

import os

import pytest

from apps.frameworks import get_adapter

from .support import TINY_PARAMS, RecordingReporter, make_data, task_of

# Hundreds of rows gain nothing from threads, and on a shared 2-core box OpenMP/TF thread pools
# spinning against other test processes cost far more than they give.
os.environ.setdefault("TRAINING_THREADS", "1")


@pytest.fixture(scope="session")
def datasets():
    return {kind: make_data(kind) for kind in ("regression", "binary", "multiclass")}


@pytest.fixture(scope="session")
def fitted(datasets):
    """fit once per combination for the whole session: (trained, reporter) by (framework, model_type, kind)."""
    cache = {}

    def get(framework: str, model_type: str, kind: str):
        key = (framework, model_type, kind)
        if key not in cache:
            reporter = RecordingReporter()
            trained = get_adapter(framework).fit(
                data=datasets[kind],
                task=task_of(kind),
                model_type=model_type,
                params=TINY_PARAMS[(framework, model_type)],
                seed=7,
                device="cpu",
                reporter=reporter,
            )
            cache[key] = (trained, reporter)
        return cache[key]

    return get
