"""Where training runs: CPU or GPU, and how many CPU threads a training process may use.

A run asks for "cpu" or "gpu". A GPU run is routed to the `gpu` queue; if it lands on a worker
without a usable GPU anyway (misconfigured host, GPU not visible, a library built without GPU
support) it fails loudly instead of silently training on the CPU.
"""
from __future__ import annotations

import functools
import json
import os
import socket
import warnings

CPU = "cpu"
GPU = "gpu"
DEVICES = (CPU, GPU)
# Each library's own name for the CPU and the GPU (scikit-learn has no GPU).
_DEVICE_NAMES = {
    "torch": ("cpu", "cuda"),
    "keras": ("/CPU:0", "/GPU:0"),
    "sklearn": ("cpu", None),
    "xgboost": ("cpu", "cuda"),
    "lightgbm": ("cpu", "gpu"),
}
# What the library needs to see, for the refusal message.
_GPU_NEEDS = {"xgboost": " (a CUDA device)", "lightgbm": " (an OpenCL GPU device)"}


class NoGpuAvailable(RuntimeError):
    """A run asked for a GPU on a worker that has none."""


def gpu_available(framework: str) -> bool:
    if framework == "torch":
        import torch

        return torch.cuda.is_available()
    if framework == "keras":
        from .keras_adapter import tf_module

        return bool(tf_module().config.list_physical_devices("GPU"))
    if framework == "xgboost":
        return _xgboost_trains_on_cuda()
    if framework == "lightgbm":
        return _lightgbm_trains_on_gpu()
    return False


def _trial_data():
    import numpy as np

    X = np.arange(32, dtype=np.float32).reshape(16, 2)
    return X, (X[:, 0] > 15).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _xgboost_trains_on_cuda() -> bool:
    """One tiny round on "cuda": XGBoost silently falls back to the CPU without a visible GPU, so
    the booster's own device setting says whether the GPU was used."""
    import xgboost

    if not xgboost.build_info().get("USE_CUDA"):
        return False
    X, y = _trial_data()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            booster = xgboost.train({"device": "cuda", "tree_method": "hist", "nthread": 1, "verbosity": 0},
                                    xgboost.DMatrix(X, label=y), num_boost_round=1)
            device = json.loads(booster.save_config())["learner"]["generic_param"].get("device", "cpu")
    except (xgboost.core.XGBoostError, KeyError, ValueError):
        return False
    return str(device).startswith("cuda")


@functools.lru_cache(maxsize=1)
def _lightgbm_trains_on_gpu() -> bool:
    """One tiny round with device_type "gpu": the PyPI wheel has OpenCL support and raises
    LightGBMError ("No OpenCL device found") where there is no GPU."""
    import lightgbm

    X, y = _trial_data()
    params = {"device_type": "gpu", "objective": "regression", "verbosity": -1, "num_threads": 1,
              "min_data_in_leaf": 1, "min_data_in_bin": 1}
    try:
        lightgbm.train(params, lightgbm.Dataset(X, label=y, params={"verbosity": -1}), num_boost_round=1)
    except lightgbm.basic.LightGBMError:
        return False
    return True


def resolve_device(requested: str, *, framework: str = "torch", run_label: str = "this run") -> str:
    """The library's device name for "cpu" or "gpu": torch "cpu"/"cuda", keras "/CPU:0"/"/GPU:0",
    xgboost "cpu"/"cuda", lightgbm "cpu"/"gpu" (its device_type).

    Raises NoGpuAvailable when "gpu" is asked for and the library cannot train on a GPU here, and
    ValueError for scikit-learn on "gpu" (it has no GPU support).
    """
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {requested!r}")
    if framework not in _DEVICE_NAMES:
        raise ValueError(f"unknown framework {framework!r}")
    cpu_name, gpu_name = _DEVICE_NAMES[framework]
    if requested == CPU:
        return cpu_name
    if gpu_name is None:
        raise ValueError("device: scikit-learn models train on the CPU only; use device 'cpu'")
    if not gpu_available(framework):
        raise NoGpuAvailable(
            f"{run_label} asked for a GPU but this worker ({socket.gethostname()}) has none visible to "
            f"{framework}{_GPU_NEEDS.get(framework, '')}; route it to a worker started with -Q gpu on a GPU host"
        )
    return gpu_name


def training_threads() -> int:
    """CPU threads for one training process: TRAINING_THREADS, else the cores up to 4.

    Each Celery pool process trains one model at a time; capping threads keeps two concurrent runs
    on a small host from thrashing each other.
    """
    configured = os.environ.get("TRAINING_THREADS", "").strip()
    if configured:
        try:
            value = int(configured)
        except ValueError:
            raise ValueError(f"TRAINING_THREADS must be a whole number, got {configured!r}") from None
        if value < 1:
            raise ValueError(f"TRAINING_THREADS must be at least 1, got {value}")
        return value
    return max(1, min(4, os.cpu_count() or 1))
