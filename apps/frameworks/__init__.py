"""Framework adapters: `get_adapter("torch" | "keras" | "sklearn" | "xgboost" | "lightgbm")`.

Adapters are imported on first use so a process that only needs scikit-learn never pays for
importing TensorFlow. The model types each adapter trains are plugins (see model_types.py and
discovery.py); the built-in ones are declared in builtin/.
"""

from __future__ import annotations

import importlib
import json
import threading
from pathlib import Path

from .choices import Framework

from .artifacts import META_FILE
from .base import FrameworkAdapter, TrainedModel
from .fitting import ArtifactError, InvalidParameter, NullReporter, ParamSpec, Reporter, UnsafeArtifact
from .devices import NoGpuAvailable, adapter_device, check_requested
from .model_types import ModelType, PluginUnavailable

FRAMEWORKS = tuple(Framework.values)
FRAMEWORK_LABELS = dict(Framework.choices)

_ADAPTER_CLASSES = {
    "torch": ("apps.frameworks.torch_adapter", "TorchAdapter"),
    "keras": ("apps.frameworks.keras_adapter", "KerasAdapter"),
    "sklearn": ("apps.frameworks.sklearn_adapter", "SklearnAdapter"),
    "xgboost": ("apps.frameworks.xgboost_adapter", "XGBoostAdapter"),
    "lightgbm": ("apps.frameworks.lightgbm_adapter", "LightGBMAdapter"),
}
_instances: dict[str, FrameworkAdapter] = {}
_lock = threading.Lock()


def get_adapter(framework: str) -> FrameworkAdapter:
    """The adapter for `framework`; ValueError for an unknown name."""
    if framework not in _ADAPTER_CLASSES:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
    with _lock:
        if framework not in _instances:
            module_name, class_name = _ADAPTER_CLASSES[framework]
            _instances[framework] = getattr(importlib.import_module(module_name), class_name)()
        return _instances[framework]


def resolve_device(requested: str, *, framework: str = "torch", run_label: str = "this run") -> str:
    """devices.adapter_device for the adapter of `framework`, for callers that hold no adapter."""
    check_requested(requested)  # before the lookup: a bad device name needs no ML library imported
    return adapter_device(get_adapter(framework), requested, run_label=run_label)


def gpu_available(framework: str) -> bool:
    """Whether `framework` can train on a GPU in this process."""
    return get_adapter(framework).gpu_available()


def load_trained(directory, *, device: str = "cpu") -> TrainedModel:
    """Load a saved model with the adapter its meta.json names (the registry's entry point)."""
    meta_path = Path(directory) / META_FILE
    try:
        framework = json.loads(meta_path.read_text()).get("framework")
    except FileNotFoundError:
        raise ArtifactError(f"{directory} has no {META_FILE}") from None
    except (ValueError, AttributeError) as exc:
        raise ArtifactError(f"{meta_path} is not a JSON object: {exc}") from exc
    if framework not in _ADAPTER_CLASSES:
        raise ArtifactError(f"{meta_path} names an unknown framework {framework!r}")
    return get_adapter(framework).load(directory, device=device)


__all__ = [
    "ArtifactError",
    "FRAMEWORKS",
    "FRAMEWORK_LABELS",
    "FrameworkAdapter",
    "InvalidParameter",
    "ModelType",
    "NoGpuAvailable",
    "NullReporter",
    "ParamSpec",
    "PluginUnavailable",
    "Reporter",
    "TrainedModel",
    "UnsafeArtifact",
    "get_adapter",
    "load_trained",
    "gpu_available",
    "resolve_device",
]
