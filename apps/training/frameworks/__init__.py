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

from apps.training.choices import Framework

from .artifacts import META_FILE
from .base import (
    ArtifactError,
    FrameworkAdapter,
    InvalidParameter,
    NullReporter,
    ParamSpec,
    Reporter,
    TrainedModel,
    UnsafeArtifact,
)
from .devices import NoGpuAvailable, resolve_device
from .model_types import ModelType, PluginUnavailable

FRAMEWORKS = tuple(Framework.values)
FRAMEWORK_LABELS = dict(Framework.choices)
# Frameworks whose training loop feeds history windows (batch, window, n_features) to a model type
# (declared here, not on the adapters, so discovery checks plugins without importing the libraries).
HISTORY_FRAMEWORKS = {"torch": True, "keras": True, "sklearn": False, "xgboost": False, "lightgbm": False}

_ADAPTER_CLASSES = {
    "torch": ("apps.training.frameworks.torch_adapter", "TorchAdapter"),
    "keras": ("apps.training.frameworks.keras_adapter", "KerasAdapter"),
    "sklearn": ("apps.training.frameworks.sklearn_adapter", "SklearnAdapter"),
    "xgboost": ("apps.training.frameworks.xgboost_adapter", "XGBoostAdapter"),
    "lightgbm": ("apps.training.frameworks.lightgbm_adapter", "LightGBMAdapter"),
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
    "ArtifactError", "FRAMEWORKS", "FRAMEWORK_LABELS", "FrameworkAdapter", "InvalidParameter", "ModelType",
    "NoGpuAvailable", "NullReporter", "ParamSpec", "PluginUnavailable", "Reporter", "TrainedModel", "UnsafeArtifact", "get_adapter", "load_trained",
    "resolve_device",
]
