from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def planned_install(tmp_path: Path) -> str:
    """Return the commands `make install` would run for a fresh virtualenv, without running them."""
    venv = tmp_path / "venv"
    result = subprocess.run(
        ["make", "--dry-run", "--always-make", "install", f"VENV={venv}"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout


def test_first_install_says_what_each_step_does(tmp_path: Path) -> None:
    plan = planned_install(tmp_path)

    assert "Creating the virtual environment" in plan
    assert "--version" in plan  # it names the Python the virtualenv is made with
    assert "Installing the pinned requirements" in plan
    assert "is ready." in plan


def test_first_install_lets_pip_show_its_progress(tmp_path: Path) -> None:
    plan = planned_install(tmp_path)

    pip_install = next(line for line in plan.splitlines() if "-m pip install" in line)
    assert "--quiet" not in pip_install
    assert " -q" not in pip_install
