"""Where training runs: CPU or GPU, and how many CPU threads a training process may use.

A run asks for "cpu" or "gpu". A GPU run is routed to the `gpu` queue; if it lands on a worker
without a usable GPU anyway (misconfigured host, GPU not visible, a library built without GPU
support) it fails loudly instead of silently training on the CPU.

This module holds only the rules every framework shares. What differs per library (its names for
the CPU and the GPU, how to tell whether its GPU is usable here) is the adapter's:
FrameworkAdapter.cpu_device / gpu_device / gpu_requirement / gpu_available().
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from .choices import Framework

if TYPE_CHECKING:
    from .base import FrameworkAdapter

CPU = "cpu"
GPU = "gpu"
DEVICES = (CPU, GPU)


class NoGpuAvailable(RuntimeError):
    """A run asked for a GPU on a worker that has none."""


def check_requested(requested: str) -> None:
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {requested!r}")


def adapter_device(adapter: FrameworkAdapter, requested: str, *, run_label: str = "this run") -> str:
    """The adapter's library name for "cpu" or "gpu" (e.g. torch "cpu"/"cuda", keras "/CPU:0"/"/GPU:0").

    Raises NoGpuAvailable when "gpu" is asked for and the library cannot train on a GPU here, and
    ValueError for a CPU-only library on "gpu".
    """
    check_requested(requested)
    if requested == CPU:
        return adapter.cpu_device
    if adapter.gpu_device is None:
        label = dict(Framework.choices).get(adapter.name, adapter.name)
        raise ValueError(f"device: {label} models train on the CPU only; use device 'cpu'")
    if not adapter.gpu_available():
        needs = f" ({adapter.gpu_requirement})" if adapter.gpu_requirement else ""
        raise NoGpuAvailable(
            f"{run_label} asked for a GPU but this worker ({socket.gethostname()}) has none visible to "
            f"{adapter.name}{needs}; route it to a worker started with -Q gpu on a GPU host"
        )
    return adapter.gpu_device


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
