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
# What other apps may import of the events app (tests may also use events.testing).
EVENTS_PUBLIC = {"events", "events.api"}


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
