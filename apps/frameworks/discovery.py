"""Finding model types: the built-ins, the modules named in settings, and installed packages.

Sources, in order (the first model type of a framework/name wins; later ones are reported):
  1. the built-in types (apps.frameworks.builtin);
  2. `settings.MODEL_TYPE_PLUGINS`: dotted module paths (env `MODEL_TYPE_PLUGINS`, comma separated);
  3. the entry-point group `mlops_portal.model_types` of installed distributions.

A module contributes its `MODEL_TYPES` list if it has one, else every ModelType subclass defined in it
with a name; an entry point may also name a single ModelType subclass. A source that fails to import
or holds a malformed type is recorded in `plugin_errors()` (admin banner, /readyz detail, the log)
and skipped: the rest of the portal keeps working.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
import threading
import traceback
from dataclasses import dataclass
from types import ModuleType

from .choices import HISTORY_FRAMEWORKS
from .model_types import ModelType, check_model_type

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "mlops_portal.model_types"
BUILTIN_MODULE = "apps.frameworks.builtin"


@dataclass(frozen=True)
class PluginError:
    source: str  # "settings: my.module" or "entry point: name = value"
    error: str

    def __str__(self):
        return f"{self.source}: {self.error}"


class ModelTypeCatalog:
    """Every model type this process can train or load, by (framework, name)."""

    def __init__(self, types: dict[tuple[str, str], ModelType], errors: list[PluginError]):
        self.types = types
        self.errors = errors

    def for_framework(self, framework: str) -> dict[str, ModelType]:
        return {name: mt for (fw, name), mt in self.types.items() if fw == framework}

    def get(self, framework: str, name: str) -> ModelType | None:
        return self.types.get((framework, name))


def _types_in(obj) -> list[ModelType]:
    if inspect.isclass(obj) and issubclass(obj, ModelType):
        return [obj()]
    if isinstance(obj, ModelType):
        return [obj]
    if isinstance(obj, ModuleType):
        listed = getattr(obj, "MODEL_TYPES", None)
        if listed is not None:
            return [t for item in listed for t in _types_in(item)]
        return [
            cls()
            for _, cls in inspect.getmembers(obj, inspect.isclass)
            if issubclass(cls, ModelType) and cls.__module__ == obj.__name__ and cls.name
        ]
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _types_in(item)]
    raise TypeError(f"expected a module, a ModelType subclass or a list of them, got {type(obj).__name__}")


def _sources(setting_modules) -> list[tuple[str, callable]]:
    sources = [("built-in", lambda: importlib.import_module(BUILTIN_MODULE))]
    for module in setting_modules:
        sources.append((f"settings MODEL_TYPE_PLUGINS: {module}", lambda m=module: importlib.import_module(m)))
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        sources.append((f"entry point {ep.name} = {ep.value}", ep.load))
    return sources


def discover(setting_modules, frameworks: dict[str, bool]) -> ModelTypeCatalog:
    types: dict[tuple[str, str], ModelType] = {}
    errors: list[PluginError] = []
    for source, load in _sources(setting_modules):
        try:
            found = _types_in(load())
        except Exception as exc:  # a plugin's import may raise anything; it must not take the portal down
            errors.append(PluginError(source, f"{type(exc).__name__}: {exc}"))
            logger.error("model-type plugin %s failed to load:\n%s", source, traceback.format_exc())
            continue
        for model_type in found:
            try:
                check_model_type(model_type, frameworks=frameworks)
            except ValueError as exc:
                errors.append(PluginError(source, str(exc)))
                logger.error("model-type plugin %s: %s", source, exc)
                continue
            key = (model_type.framework, model_type.name)
            if key in types:
                message = (
                    f"{key[0]}/{key[1]} is already provided by {type(types[key]).__module__}; "
                    f"{type(model_type).__module__} is ignored"
                )
                errors.append(PluginError(source, message))
                logger.error("model-type plugin %s: %s", source, message)
                continue
            types[key] = model_type
    return ModelTypeCatalog(types, errors)


_catalog: ModelTypeCatalog | None = None
_lock = threading.Lock()


def catalog() -> ModelTypeCatalog:
    """The process-wide catalog, discovered on first use."""
    global _catalog
    with _lock:
        if _catalog is None:
            from django.conf import settings

            _catalog = discover(getattr(settings, "MODEL_TYPE_PLUGINS", []), HISTORY_FRAMEWORKS)
        return _catalog


def reset_catalog() -> None:
    """Discover again on next use (tests; after installing a plugin in a running shell)."""
    global _catalog
    with _lock:
        _catalog = None


def plugin_errors() -> list[PluginError]:
    return list(catalog().errors)


def plugin_problems() -> list[str]:
    """Model-type plugins that failed to load, each with its error: for /healthz and the admin banner."""
    return [str(error) for error in plugin_errors()]
