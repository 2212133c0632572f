"""Which app may import which (apps/CONTRACTS.md, "Import directions"): each app lists the apps below
it; an import of any other app fails here, so a back-edge or a cycle cannot come in unnoticed. An
app's tables may still point up by foreign key (monitoring's rows name their deployment): its code
then reaches that table through the field's related_model, never by importing the app.

Inside the apps no module imports back into one that imports it, function-level imports included
(only `if TYPE_CHECKING:` blocks are left out, as they never run): a lazy import is no licence for a
cycle. Services queue their own app's Celery tasks by name (`current_app.send_task`), since the
tasks module imports the services."""

import ast
from pathlib import Path

APPS_DIR = Path(__file__).resolve().parents[2] / "apps"

# Lowest first. core is plumbing every app may use and imports no app.
MAY_IMPORT = {
    "core": set(),
    "datasets": {"core"},
    "frameworks": {"core"},
    "registry": {"core", "datasets", "frameworks"},
    "training": {"core", "datasets", "frameworks", "registry"},
    "tuning": {"core", "datasets", "frameworks", "registry", "training"},
    "monitoring": {"core", "datasets", "frameworks", "registry"},
    "deployments": {"core", "datasets", "frameworks", "registry", "training", "monitoring"},
    "alerts": {"core", "datasets", "frameworks", "registry", "training", "monitoring", "deployments"},
    "delivery": {"core", "datasets", "frameworks", "registry", "training", "monitoring", "deployments", "alerts"},
    "dashboard": {
        "core",
        "datasets",
        "frameworks",
        "registry",
        "training",
        "tuning",
        "monitoring",
        "deployments",
        "alerts",
        "delivery",
    },
}


def _imported_apps(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = (
            [node.module]
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
            else ([alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
        )
        for name in names:
            parts = name.split(".")
            if parts[0] == "apps" and len(parts) > 1:
                found.add(parts[1])
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(APPS_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, child.end_lineno + 1))
    return lines


def _module_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in APPS_DIR.rglob("*.py") if "migrations" not in p.parts}
    graph = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        skipped = _type_checking_lines(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skipped:
                continue
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets.update(
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else base for alias in node.names
                )
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        resolved = set()
        for target in targets:
            while target and target not in paths:
                target = target.rpartition(".")[0]
            if target and target != name:
                resolved.add(target)
        graph[name] = resolved
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
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
    apps = {p.name for p in APPS_DIR.iterdir() if (p / "__init__.py").exists()}
    assert apps == set(MAY_IMPORT), "add the new app to MAY_IMPORT (and apps/CONTRACTS.md)"


def test_the_order_itself_has_no_cycle():
    for app, below in MAY_IMPORT.items():
        for other in below:
            assert app not in MAY_IMPORT[other], f"{app} and {other} may import each other"


def test_no_app_imports_an_app_above_it():
    wrong = sorted(
        f"{path} imports apps.{imported}" for path, app, imported in _edges() if imported not in MAY_IMPORT[app]
    )
    assert not wrong, "imports against the order in apps/CONTRACTS.md:\n" + "\n".join(wrong)


def test_no_module_imports_back_into_a_module_that_imports_it():
    graph = _module_graph()
    cycles = _cycles(graph)
    described = ["\n".join(f"  {m} -> {', '.join(sorted(graph[m] & set(c)))}" for m in c) for c in cycles]
    assert not cycles, "import cycles between modules:\n" + "\n\n".join(described)


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
