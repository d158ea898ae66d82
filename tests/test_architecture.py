"""The producer knows no consumer; consumers know the producer and not each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
PRODUCER = "users"
CONSUMERS = ("notifications", "audit", "analytics", "crm")


def imported_top_level_packages(app: str) -> dict[str, set[str]]:
    """Map each Python file of app to the top-level packages it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((BASE_DIR / app).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        packages: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                packages.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                packages.add(node.module.split(".")[0])
        found[str(path.relative_to(BASE_DIR))] = packages
    return found


def test_the_producer_imports_no_consumer() -> None:
    offenders = {
        path: sorted(packages & set(CONSUMERS))
        for path, packages in imported_top_level_packages(PRODUCER).items()
        if packages & set(CONSUMERS)
    }

    assert offenders == {}


@pytest.mark.parametrize("consumer", CONSUMERS)
def test_a_consumer_imports_no_other_consumer(consumer: str) -> None:
    others = set(CONSUMERS) - {consumer}

    offenders = {
        path: sorted(packages & others)
        for path, packages in imported_top_level_packages(consumer).items()
        if packages & others
    }

    assert offenders == {}


def test_the_event_infrastructure_imports_no_app() -> None:
    apps = {PRODUCER, *CONSUMERS}

    offenders = {
        path: sorted(packages & apps)
        for path, packages in imported_top_level_packages("events").items()
        if packages & apps
    }

    assert offenders == {}


def test_the_architecture_check_sees_imports() -> None:
    """Guard against a check that passes because it parses nothing."""
    imports = imported_top_level_packages("crm")

    assert "users" in imports["crm/services.py"]
    assert "events" in imports["crm/tasks.py"]
