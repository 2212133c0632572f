"""Fixtures for plugin tests: throwaway plugin modules on sys.path and a fresh model-type catalog."""

import importlib
import sys
import textwrap

import pytest

from apps.frameworks.discovery import reset_catalog


@pytest.fixture
def fresh_catalog():
    """Discovery runs again in the test and once more after it, so no test sees another's plugins."""
    reset_catalog()
    yield
    reset_catalog()


@pytest.fixture
def plugin_module(tmp_path, monkeypatch, settings, fresh_catalog):
    """write(name, source) puts a module on sys.path and lists it in MODEL_TYPE_PLUGINS."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written = []

    def write(name: str, source: str, *, listed: bool = True):
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
        if listed and name not in settings.MODEL_TYPE_PLUGINS:
            settings.MODEL_TYPE_PLUGINS = [*settings.MODEL_TYPE_PLUGINS, name]
        written.append(name)
        reset_catalog()
        return path

    yield write
    for name in written:
        sys.modules.pop(name, None)


@pytest.fixture
def inline_runs(settings):
    """Runs executed in the test's transaction: no heartbeat thread, log lines written inline."""
    settings.TRAINING_HEARTBEAT_SECONDS = 3600
    settings.TRAINING_WRITE_BEHIND = False
