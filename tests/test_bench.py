"""The benchmark suite is not a test, but it must keep starting: `make bench` runs it from a fresh clone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def test_bench_command_lists_every_benchmark_size() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--help"], cwd=BASE_DIR, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    for size in ("throughput=", "lag=", "recovery=", "memory=", "sweep="):
        assert size in result.stdout
