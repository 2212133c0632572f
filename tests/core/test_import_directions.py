"""Which app may import which (apps/CONTRACTS.md, "Import directions"): each app lists the apps below
it; an import of any other app fails here, so a back-edge or a cycle cannot come in unnoticed.

Two back-edges are still in the code, listed file by file in KNOWN_BACK_EDGES: the list may only
shrink (a listed import that is gone fails too, so the list stays true)."""
import ast
from pathlib import Path

APPS_DIR = Path(__file__).resolve().parents[2] / "apps"

# Lowest first. core is plumbing every app may use and imports no app.
MAY_IMPORT = {
    "core": set(),
    "datasets": {"core"},
    "registry": {"core", "datasets"},
    "training": {"core", "datasets", "registry"},
    "tuning": {"core", "datasets", "registry", "training"},
    "monitoring": {"core", "datasets", "registry"},
    "deployments": {"core", "datasets", "registry", "training", "monitoring"},
    "alerts": {"core", "datasets", "registry", "training", "monitoring", "deployments"},
    "delivery": {"core", "datasets", "registry", "training", "monitoring", "deployments", "alerts"},
    "dashboard": {"core", "datasets", "registry", "training", "tuning", "monitoring", "deployments", "alerts",
                  "delivery"},
}

KNOWN_BACK_EDGES = {
    # The monitoring API and /metrics name deployments and their rollouts; the log writer checks a
    # deployment is visible before inserting. To go: the API and exposition move up, the check
    # reads ids only.
    ("apps/monitoring/api.py", "deployments"),
    ("apps/monitoring/management/commands/rebuild_rollups.py", "deployments"),
    ("apps/monitoring/metrics.py", "deployments"),
    ("apps/monitoring/selectors.py", "deployments"),
    ("apps/monitoring/services/logbuffer.py", "deployments"),
    # Loading an artifact needs the framework adapters, and a version is created from a run. To go:
    # the adapters become a layer of their own below both.
    ("apps/registry/api.py", "training"),
    ("apps/registry/loading.py", "training"),
    ("apps/registry/services.py", "training"),
}


def _imported_apps(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else (
            [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "apps" and len(parts) > 1:
                found.add(parts[1])
    return found


def _edges() -> set[tuple[str, str, str]]:
    edges = set()
    for path in APPS_DIR.rglob("*.py"):
        relative = path.relative_to(APPS_DIR.parent)
        app = relative.parts[1]
        if "migrations" in relative.parts or app not in MAY_IMPORT:
            continue
        for imported in _imported_apps(path) - {app}:
            edges.add((relative.as_posix(), app, imported))
    return edges


def test_every_app_directory_has_its_place_in_the_order():
    apps = {p.name for p in APPS_DIR.iterdir() if p.is_dir() and (p / "apps.py").exists()}
    assert apps == set(MAY_IMPORT), "add the new app to MAY_IMPORT (and apps/CONTRACTS.md)"


def test_the_order_itself_has_no_cycle():
    for app, below in MAY_IMPORT.items():
        for other in below:
            assert app not in MAY_IMPORT[other], f"{app} and {other} may import each other"


def test_no_app_imports_an_app_above_it_beyond_the_known_back_edges():
    wrong = sorted(f"{path} imports apps.{imported}" for path, app, imported in _edges()
                   if imported not in MAY_IMPORT[app] and (path, imported) not in KNOWN_BACK_EDGES)
    assert not wrong, "imports against the order in apps/CONTRACTS.md:\n" + "\n".join(wrong)


def test_every_known_back_edge_is_still_there():
    present = {(path, imported) for path, _, imported in _edges()}
    gone = sorted(f"{path} -> {imported}" for path, imported in KNOWN_BACK_EDGES - present)
    assert not gone, "remove these from KNOWN_BACK_EDGES, they are fixed:\n" + "\n".join(gone)
