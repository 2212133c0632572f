"""Where training runs: CPU or GPU, and how many CPU threads a training process may use.

A run asks for "cpu" or "gpu". A GPU run is routed to the `gpu` queue; if it lands on a worker
without CUDA anyway (misconfigured host, GPU not visible) it fails loudly instead of silently
training on the CPU.
"""
from __future__ import annotations

import os
import socket

CPU = "cpu"
GPU = "gpu"
DEVICES = (CPU, GPU)


class NoGpuAvailable(RuntimeError):
    """A run asked for a GPU on a worker that has none."""


def gpu_available(framework: str) -> bool:
    if framework == "torch":
        import torch

        return torch.cuda.is_available()
    if framework == "keras":
        from .keras_adapter import tf_module

        return bool(tf_module().config.list_physical_devices("GPU"))
    return False


def resolve_device(requested: str, *, framework: str = "torch", run_label: str = "this run") -> str:
    """The library's device name for "cpu" or "gpu": torch "cpu"/"cuda", keras "/CPU:0"/"/GPU:0".

    Raises NoGpuAvailable when "gpu" is asked for and the library sees no GPU here, and ValueError
    for scikit-learn on "gpu" (it has no GPU support).
    """
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {requested!r}")
    if framework not in ("torch", "keras", "sklearn"):
        raise ValueError(f"unknown framework {framework!r}")
    if requested == CPU:
        return "/CPU:0" if framework == "keras" else "cpu"
    if framework == "sklearn":
        raise ValueError("device: scikit-learn models train on the CPU only; use device 'cpu'")
    if not gpu_available(framework):
        raise NoGpuAvailable(
            f"{run_label} asked for a GPU but this worker ({socket.gethostname()}) has none visible to "
            f"{framework}; route it to a worker started with -Q gpu on a GPU host"
        )
    return "/GPU:0" if framework == "keras" else "cuda"


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
