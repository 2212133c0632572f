"""The model-type plugin interface: one class per trainable model type, built-in or a team's own.

A model type belongs to one framework adapter (torch, keras, sklearn, xgboost, lightgbm) and says
what it is called, which tasks it supports and which hyperparameters it takes (`ParamSpec`s, so
forms, the API, validation and tuning search spaces work unchanged). It then either

* **builds** the untrained model and lets the adapter's own training loop fit it (early stopping,
  best-weight restore, live epochs, cancellation and pruning come for free), or
* also overrides **fit** to bring its own loop, reporting through the FitContext it is handed:
  `ctx.report_epoch(epoch, total, model)`, `ctx.log(message)` and `ctx.should_stop()`.

The adapter, never the plugin, writes the model file, in the framework's safe format (safetensors,
.keras with safe_mode, skops with an allowlist, XGBoost UBJSON, LightGBM text). A saved model records
the plugin's provenance (module, package, version, sha256 of its package's source files); loading refuses a
model whose plugin is missing or whose code changed since it was trained.

    class TinyConv(ModelType):
        framework = "torch"
        name = "tiny_conv"
        uses_history = True
        params = {"channels": ParamSpec("int", 16, 1, 256), "window": ParamSpec("int", 8, 2, 128)}

        def build(self, *, task, params, n_features, n_outputs, window, seed):
            return MyConvNet(n_features, n_outputs, params["channels"])
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
import re
import sys
from pathlib import Path
from typing import Any, ClassVar

from apps.frameworks.metrics import CLASSIFICATION, REGRESSION

from .fitting import ArtifactError, FitContext, ParamSpec

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
BUILTIN_PACKAGE = "mlops-portal"
BUILTIN_MODULE_PREFIX = "apps.frameworks.builtin"
NO_PACKAGE = "(no package)"  # a module listed in MODEL_TYPE_PLUGINS that no installed distribution owns


class PluginUnavailable(ArtifactError):
    """A saved model whose model-type plugin is not installed here, or whose code has changed."""


class ModelType:
    """Subclass, set the class attributes, implement `build` (and `fit` for an own training loop).

    framework: the adapter that trains and saves it: "torch", "keras", "sklearn", "xgboost", "lightgbm".
    name: lowercase identifier, unique within the framework (it is stored on runs and versions).
    tasks: the subset of ("regression", "classification") it supports.
    params: the model's own hyperparameters. Types that use the adapter's loop also get the loop's
        parameters (e.g. torch: learning_rate, batch_size, epochs, patience); declaring one of them
        here overrides its default or range.
    uses_history: the model reads windows (batch, window, n_features) of one entity's consecutive
        rows instead of single rows (torch and keras only); it must then declare a "window" param.
    trusted_types: fully qualified names of the non-default types a saved model may hold, beyond the
        built-in allowlist: skops types for sklearn, Keras classes ("keras.layers.Conv1D") for keras.
    custom_objects: Keras classes of the plugin's own (layers, models) the saved model refers to;
        only these are passed to `keras.saving.load_model`, with safe_mode on.
    """

    framework: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = (REGRESSION, CLASSIFICATION)
    params: ClassVar[dict[str, ParamSpec]] = {}
    uses_history: ClassVar[bool] = False
    trusted_types: ClassVar[tuple[str, ...]] = ()
    custom_objects: ClassVar[tuple[type, ...]] = ()

    def build(self, *, task: str, params: dict, n_features: int, n_outputs: int, window: int, seed: int) -> Any:
        """The untrained model for `params` (already validated and completed with defaults).

        torch: an nn.Module mapping (batch, n_features), or (batch, window, n_features) when
            uses_history, to (batch, n_outputs): the standardised target for regression, class
            logits for classification. It is rebuilt this way when a saved model is loaded (with
            seed 0) and its state_dict loaded into it, so anything random must live in parameters or
            registered buffers, not in plain attributes drawn from `seed`.
        keras: an uncompiled keras.Model with the same inputs and outputs.
        sklearn: an estimator or Pipeline with fit/predict (classification: predict_proba).
        xgboost / lightgbm: a dict of the library's native training parameters, merged over the
            adapter's (e.g. a custom objective name).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement build()")

    def fit(self, model: Any, ctx: FitContext) -> Any:
        """Own training loop (optional): train `model` from `build` on `ctx.splits["train"]`.

        Call `ctx.report_epoch(epoch, total, model)` after each epoch (it computes and reports the
        train and validation metrics and returns them), `ctx.should_stop()` often (stop and return
        when it is not None), and `ctx.log(...)` for anything worth a log line. Return the fitted
        model (usually `model` itself). `ctx.device` is the library's device name.
        """
        raise NotImplementedError

    @property
    def own_loop(self) -> bool:
        return type(self).fit is not ModelType.fit

    def __repr__(self):
        return f"<{self.framework} model type {self.name!r} from {type(self).__module__}>"


def is_builtin(cls: type) -> bool:
    return cls.__module__.startswith(BUILTIN_MODULE_PREFIX)


def _code_files(cls: type) -> tuple[Path, list[Path]]:
    """(root, the .py files whose code the model type runs): its whole top-level package, or the
    single module it lives in; for the built-ins, the builtin package."""
    if is_builtin(cls):
        package = sys.modules[BUILTIN_MODULE_PREFIX]
    elif cls.__module__.startswith("apps."):
        # A team's module inside the portal's own tree: its package, not the whole portal.
        package = sys.modules.get(cls.__module__.rsplit(".", 1)[0])
    else:
        package = sys.modules.get(cls.__module__.split(".")[0])
    paths = list(getattr(package, "__path__", []) or [])
    if paths:
        root = Path(paths[0])
        return root, sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    source = inspect.getsourcefile(sys.modules[cls.__module__]) if cls.__module__ in sys.modules else None
    if not source:
        return Path("."), []
    return Path(source).parent, [Path(source)]


def _code_sha256(cls: type) -> str:
    root, files = _code_files(cls)
    if not files:
        raise ValueError(
            f"{cls.__module__}.{cls.__name__}: its source files cannot be read, so the code a model "
            "was trained with could not be recorded; install the plugin from source"
        )
    digest = hashlib.sha256()
    for path in files:
        digest.update(
            f"{path.relative_to(root).as_posix()}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode()
        )
    return digest.hexdigest()


def _package_of(cls: type) -> tuple[str, str]:
    if is_builtin(cls):
        return BUILTIN_PACKAGE, "built-in"
    top = cls.__module__.split(".")[0]
    for dist in importlib.metadata.packages_distributions().get(top, []):
        try:
            return dist, importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    module = sys.modules.get(top)
    return NO_PACKAGE, str(getattr(module, "__version__", "unversioned"))


@functools.cache
def _provenance(cls: type) -> tuple:
    package, version = _package_of(cls)
    return (
        ("framework", cls.framework),
        ("model_type", cls.name),
        ("module", cls.__module__),
        ("package", package),
        ("package_version", version),
        ("code_sha256", _code_sha256(cls)),
    )


def plugin_provenance(model_type: ModelType | type) -> dict:
    """Who provides a model type, in which version, with which code: recorded on every save.

    Computed once per class, when discovery first sees it, so it describes the code this process
    imported even if the files change on disk later (an in-place upgrade needs a restart).
    """
    cls = model_type if isinstance(model_type, type) else type(model_type)
    return dict(_provenance(cls))


def _label(p: dict) -> str:
    code = str(p.get("code_sha256"))[:12]
    if p.get("package") == NO_PACKAGE:
        return f"module {p.get('module')} (code {code})"
    return f"{p.get('package')} {p.get('package_version')} ({p.get('module')}, code {code})"


def check_provenance(saved, current: ModelType | None, *, framework: str, model_type: str) -> None:
    """Raise PluginUnavailable unless the installed model type is the code the model was saved with.

    saved: meta.json's "plugin" entry (absent from models saved before plugins existed: then the name
    is all there is to check). Built-in types are checked by name only: they ship with the portal,
    whose own version each run records, and their files are checked structurally on load.
    """
    if saved is not None and not (isinstance(saved, dict) and all(isinstance(v, str) for v in saved.values())):
        raise ArtifactError("meta.json: 'plugin' must be an object of strings")
    if current is None:
        who = f" (plugin {_label(saved)})" if saved else ""
        raise PluginUnavailable(
            f"model type {framework}/{model_type}{who} is not installed on this host; install that plugin "
            "version to load this model"
        )
    if not saved or is_builtin(type(current)):
        return
    now = plugin_provenance(current)
    if (saved.get("module"), saved.get("code_sha256")) != (now["module"], now["code_sha256"]):
        raise PluginUnavailable(
            f"model type {framework}/{model_type} changed since this model was trained: it was trained with "
            f"{_label(saved)}, this host has {_label(now)}; install the version it was trained with, or retrain it"
        )


DANGEROUS_MODULES = frozenset(
    {
        "builtins",
        "os",
        "posix",
        "nt",
        "sys",
        "subprocess",
        "importlib",
        "pickle",
        "marshal",
        "runpy",
        "shutil",
        "socket",
        "ctypes",
        "code",
        "types",
        "functools",
        "operator",
        "io",
        "pathlib",
    }
)


def check_model_type(model_type: ModelType, *, frameworks: dict[str, bool]) -> None:
    """Raise ValueError when a model type is not well formed.

    frameworks: framework name -> whether its adapter trains history windows.
    """
    cls = type(model_type)
    where = f"{cls.__module__}.{cls.__name__}"
    if model_type.framework not in frameworks:
        raise ValueError(f"{where}: framework must be one of {sorted(frameworks)}, got {model_type.framework!r}")
    if not isinstance(model_type.name, str) or not NAME_PATTERN.match(model_type.name):
        raise ValueError(f"{where}: name must be a lowercase identifier (a-z, 0-9, _), got {model_type.name!r}")
    tasks = tuple(model_type.tasks)
    if not tasks or not set(tasks) <= {REGRESSION, CLASSIFICATION}:
        raise ValueError(f"{where}: tasks must be a non-empty subset of ('regression', 'classification')")
    for param, spec in model_type.params.items():
        if not isinstance(spec, ParamSpec):
            raise ValueError(f"{where}: params[{param!r}] must be a ParamSpec, got {type(spec).__name__}")
    if model_type.uses_history:
        if not frameworks[model_type.framework]:
            raise ValueError(f"{where}: {model_type.framework} models cannot use history windows")
        if "window" not in model_type.params:
            raise ValueError(f"{where}: uses_history needs a 'window' parameter")
    if type(model_type).build is ModelType.build:
        raise ValueError(f"{where}: implement build()")
    for name in model_type.trusted_types:
        top = str(name).split(".")[0]
        if top in DANGEROUS_MODULES or "." not in str(name):
            raise ValueError(f"{where}: trusted_types may not list {name!r}: loading it could run code")
    for cls in model_type.custom_objects:
        if not isinstance(cls, type):
            raise ValueError(f"{where}: custom_objects must be classes, got {cls!r}")
    plugin_provenance(model_type)  # the code this process imported; raises when it cannot be read
