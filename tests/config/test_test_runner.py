from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.test_runner import pytest_selection

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def manage_test(*args: str, collect_only: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `manage.py test` with the arguments (by default pytest only lists what it would run)."""
    env = {**os.environ, "PYTEST_ADDOPTS": "--collect-only -q" if collect_only else ""}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "manage.py", "test", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def collected(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Return the node ids pytest listed."""
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if "::" in line]


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("tests.test_architecture", "tests/test_architecture.py"),
        ("tests.test_architecture.test_name", "tests/test_architecture.py::test_name"),
        ("tests.events.test_commands", "tests/events/test_commands.py"),
        ("tests.mod.TestCase.test_method", "tests/mod.py::TestCase::test_method"),
    ],
)
def test_a_dotted_label_names_its_file_and_tests(tmp_path: Path, label: str, expected: str) -> None:
    # given
    (tmp_path / "tests" / "events").mkdir(parents=True)
    for module in ("test_architecture.py", "mod.py", "events/test_commands.py"):
        (tmp_path / "tests" / module).touch()

    # when
    selection = pytest_selection(label, base_dir=tmp_path)

    # then
    assert selection == str(tmp_path / expected)


@pytest.mark.parametrize("label", ["tests/test_architecture.py", "tests/x.py::test_y", "tests", "no.such.module"])
def test_a_path_a_node_id_or_an_unknown_label_reaches_pytest_unchanged(tmp_path: Path, label: str) -> None:
    (tmp_path / "tests").mkdir()

    assert pytest_selection(label, base_dir=tmp_path) == label


def test_manage_py_test_runs_a_dotted_module_label() -> None:
    result = manage_test("tests.test_architecture")

    node_ids = collected(result)
    assert node_ids
    assert all(node_id.startswith("tests/test_architecture.py::") for node_id in node_ids)


def test_manage_py_test_runs_a_dotted_test_label() -> None:
    result = manage_test("tests.test_architecture.test_the_cycle_finder_finds_a_cycle", collect_only=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_manage_py_test_selects_by_keyword() -> None:
    result = manage_test("tests/test_architecture.py", "-k", "cycle_finder")

    assert collected(result) == ["tests/test_architecture.py::test_the_cycle_finder_finds_a_cycle"]
