"""`manage.py test` runs pytest, taking Django's dotted labels and -k as well as pytest's paths."""

from __future__ import annotations

from argparse import ArgumentParser
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_django.runner import TestRunner as PytestTestRunner

BASE_DIR = Path(__file__).resolve().parent.parent


def pytest_selection(label: str, *, base_dir: Path = BASE_DIR) -> str:
    """Translate a Django test label (tests.app.test_module.Class.test_name) into a pytest path or node id."""
    if "::" in label or "/" in label or label.endswith(".py") or (base_dir / label).exists():
        return label
    parts = label.split(".")
    # The longest prefix naming a module or a package is the file; what follows names tests in it.
    for split in range(len(parts), 0, -1):
        module = base_dir.joinpath(*parts[:split])
        rest = parts[split:]
        if module.with_suffix(".py").is_file():
            return "::".join([str(module.with_suffix(".py")), *rest])
        if module.is_dir() and not rest:
            return str(module)
    # Not a module of this project: pytest says so in its own words.
    return label


class TestRunner(PytestTestRunner):
    """Run pytest for `manage.py test`, mapping dotted labels and -k onto pytest's selection."""

    def __init__(self, *, test_name_patterns: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.test_name_patterns = test_name_patterns or []

    @classmethod
    def add_arguments(cls, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "-k",
            action="append",
            dest="test_name_patterns",
            metavar="EXPRESSION",
            help="Only run tests matching this pytest -k expression (repeat to require all).",
        )

    def run_tests(self, test_labels: Iterable[str], **kwargs: Any) -> int:
        """Run pytest on the labels, translated, with the -k expressions joined by `and`."""
        selection = [pytest_selection(label) for label in test_labels]
        if self.test_name_patterns:
            expression = " and ".join(f"({pattern})" for pattern in self.test_name_patterns)
            selection = ["-k", expression, *selection]
        return super().run_tests(selection, **kwargs)
