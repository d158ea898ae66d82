"""The benchmark suite is not a test, but it must keep starting: `make bench` runs it from a fresh clone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.__main__ import END, START, _kept_from_docs
from bench.flow import per_second
from devtools.fakes import CRMRequest

BASE_DIR = Path(__file__).resolve().parent.parent


def test_bench_command_lists_every_benchmark_size() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--help"], cwd=BASE_DIR, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    for size in (
        "throughput=",
        "lag=",
        "recovery=",
        "memory=",
        "sweep=",
        "quota=",
        "quota_rate=",
        "outage=",
        "backfill=",
    ):
        assert size in result.stdout


def test_requests_are_counted_per_whole_second_from_the_first() -> None:
    requests = [
        CRMRequest(method="PUT", path="/contacts/1", headers={}, body={}, received_at=at)
        for at in (10.0, 10.5, 10.99, 11.0, 12.7, 13.5)
    ]

    assert per_second(requests, start=10.0, end=13.2) == [3, 1, 1, 0]


def test_an_only_run_keeps_the_committed_figures_of_the_other_benchmarks() -> None:
    written = (
        (
            f"{START}\nLast run: …\n\n| benchmark | figure | median |\n|---|---|---:|\n"
            "| 1. request cost | bare signup | 30 |\n| 8. quota recovery | refused (429) | 63 |\n\n"
            f"Sweep query plan:\n\n```\nIndex Scan using events_delivery_pending_due\n```\n{END}"
        )
        .removeprefix(START)
        .removesuffix(END)
    )

    rows, plan = _kept_from_docs(written, ran={"8. quota recovery"})

    assert rows == ["| 1. request cost | bare signup | 30 |"]
    assert plan == "Index Scan using events_delivery_pending_due\n"
