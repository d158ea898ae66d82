"""The producer knows no consumer; consumers know the producer and not each other; apps use events.api only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from events.api import consumers

BASE_DIR = Path(__file__).resolve().parent.parent
PRODUCER = "users"
# Every app that declares a consumer, from the registry: a new consumer app is covered by itself.
CONSUMER_APPS = sorted({declared.handler.__module__.split(".")[0] for declared in consumers()})
# What other apps may import of the event layer: the API for producers and consumers, and the
# operator's helpers for their admins (tests may also use events.testing).
EVENTS_PUBLIC = {"events.api", "events.operator.api"}


def imported_modules(app: str) -> dict[str, set[str]]:
    """Map each Python file of app to the modules it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((BASE_DIR / app).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        modules: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module)
        found[str(path.relative_to(BASE_DIR))] = modules
    return found


def top_level(modules: set[str]) -> set[str]:
    return {module.split(".")[0] for module in modules}


def test_the_consumer_apps_come_from_the_registry() -> None:
    assert len(CONSUMER_APPS) >= 1
    assert PRODUCER not in CONSUMER_APPS


def test_the_producer_imports_no_consumer() -> None:
    offenders = {
        path: sorted(top_level(modules) & set(CONSUMER_APPS))
        for path, modules in imported_modules(PRODUCER).items()
        if top_level(modules) & set(CONSUMER_APPS)
    }

    assert offenders == {}


@pytest.mark.parametrize("app", CONSUMER_APPS)
def test_a_consumer_imports_no_other_consumer(app: str) -> None:
    others = set(CONSUMER_APPS) - {app}

    offenders = {
        path: sorted(top_level(modules) & others)
        for path, modules in imported_modules(app).items()
        if top_level(modules) & others
    }

    assert offenders == {}


@pytest.mark.parametrize("app", [PRODUCER, *CONSUMER_APPS])
def test_apps_use_only_the_public_api_of_events(app: str) -> None:
    offenders = {
        path: sorted(module for module in modules if module.split(".")[0] == "events" and module not in EVENTS_PUBLIC)
        for path, modules in imported_modules(app).items()
    }

    assert {path: found for path, found in offenders.items() if found} == {}


def test_the_event_infrastructure_imports_no_app() -> None:
    apps = {PRODUCER, *CONSUMER_APPS}

    offenders = {
        path: sorted(top_level(modules) & apps)
        for path, modules in imported_modules("events").items()
        if top_level(modules) & apps
    }

    assert offenders == {}


def test_the_architecture_check_sees_imports() -> None:
    """Guard against a check that passes because it parses nothing."""
    imports = imported_modules("crm")

    assert "users.models" in imports["crm/services.py"]
    assert "events.api" in imports["crm/tasks.py"]


def event_layer_imports() -> dict[str, set[str]]:
    """Map each module of the event layer (events.*) to the event-layer modules it imports, anywhere in it."""
    graph: dict[str, set[str]] = {}
    for path in sorted((BASE_DIR / "events").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        module = ".".join(path.relative_to(BASE_DIR).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(), filename=str(path))
        targets: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets.add(node.module)
                # `from events import ledger` imports the module events.ledger.
                targets.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[module] = targets
    return {
        module: {target for target in targets if target in graph and target != module}
        for module, targets in graph.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_event_layer_has_no_import_cycle() -> None:
    graph = event_layer_imports()

    assert "events.ledger" in graph["events.draining"]  # it parses what it checks
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_event_layer_imports_nothing_inside_a_function_but_its_app_config() -> None:
    offenders = []
    for path in sorted((BASE_DIR / "events").rglob("*.py")):
        if "migrations" in path.parts or path.name == "apps.py":  # AppConfig.ready(): Django's own idiom
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                offenders.extend(
                    f"{path.relative_to(BASE_DIR)}:{node.lineno}"
                    for node in ast.walk(function)
                    if isinstance(node, ast.Import | ast.ImportFrom)
                )

    assert offenders == []


def test_the_producers_and_consumers_api_loads_no_admin_and_no_operator_page() -> None:
    graph = event_layer_imports()
    seen, todo = set(), ["events.api"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    external = {
        module: modules
        for module, modules in imported_modules("events").items()
        if module.replace("/", ".").removesuffix(".py") in seen
    }

    assert "events.publishing" in seen  # it follows what it checks
    assert not {module for module in seen if module.startswith("events.operator")}
    assert {
        path: sorted(m for m in found if m.startswith("django.contrib.admin")) for path, found in external.items()
    } == {path: [] for path in external}
