"""Run the benchmark suite: `python -m bench` (what `make bench` runs). It prints a table and writes JSON."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = BASE_DIR / "bench-results"
DOCS = BASE_DIR / "docs" / "performance.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def table(figures: list[dict]) -> str:
    """Return the figures as a Markdown table."""
    lines = [
        "| benchmark | figure | median | min | max | unit | ratio | vs | target | met | notes | measured |",
        "|---|---|---:|---:|---:|---|---:|---|---|---|---|---|",
    ]
    for f in figures:
        met = "" if f["met"] is None else ("yes" if f["met"] else "**no**")
        ratio = "" if f["ratio"] is None else f"{f['ratio']:.2f}"
        lines.append(
            f"| {f['benchmark']} | {f['name']} | {_number(f['median'])} | {_number(f['min'])} | {_number(f['max'])} "
            f"| {f['unit']} | {ratio} | {f['baseline']} | {f['target']} | {met} | {f['note']} "
            f"| {f.get('measured', '')} |"
        )
    return "\n".join(lines)


def main() -> int:
    """Parse the arguments, run the benchmarks, report."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Small sizes: a smoke run of every benchmark.")
    parser.add_argument("--only", help="Comma-separated benchmark names (default: all).")
    parser.add_argument("--write-docs", action="store_true", help="Put the table into docs/performance.md.")
    parser.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="NAME=N",
        help="Override a size: throughput=2000 (events per repeat), lag=60 (seconds), recovery=10000, "
        "memory=100000 (events), sweep=1000000 (rows), quota=10000 (owed contacts), quota_rate=50 (per second), "
        "quota_workers=2, outage=60 (seconds), outage_owed=50, backfill=10000 (old contacts). "
        "The defaults are the issue's sizes.",
    )
    options = parser.parse_args()

    from bench.harness import bench_environment

    sizes = {name: int(value) for name, value in (item.split("=", 1) for item in options.size)}
    with bench_environment(quick=options.quick, sizes=sizes) as bench:
        from django.db import connection

        from bench.benchmarks import BENCHMARKS

        selected = options.only.split(",") if options.only else list(BENCHMARKS)
        unknown = set(selected) - set(BENCHMARKS)
        if unknown:
            parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}; known: {', '.join(BENCHMARKS)}")
        figures: list[dict] = []
        for name in selected:
            started = time.monotonic()
            print(f"== {name} ...", flush=True)
            results = [figure.as_dict() for figure in BENCHMARKS[name](bench)]
            figures.extend(results)
            print(table(results), f"\n   ({time.monotonic() - started:.0f} s)\n", flush=True)
        database = connection.vendor
        plan = bench.sweep_plan

    when = datetime.now(UTC).isoformat(timespec="seconds")
    for figure in figures:
        figure["measured"] = f"{when} ({database})"
    figures = _merge_with_latest(figures)
    run = {
        "when": when,
        "quick": options.quick,
        "sizes": sizes,
        "database": database,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {_cpus()} CPUs",
        "figures": figures,
        "sweep_plan": plan,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for path in (RESULTS_DIR / f"bench-{stamp}.json", RESULTS_DIR / "latest.json"):
        path.write_text(json.dumps(run, indent=2) + "\n")
    print(table(figures))
    print(f"\nWritten {RESULTS_DIR / 'latest.json'}")
    if options.write_docs:
        _write_docs(run)
        print(f"Updated {DOCS}")
    return 0


def _merge_with_latest(figures: list[dict]) -> list[dict]:
    """Keep the latest figures of the benchmarks this run skipped (--only), so the table stays whole."""
    latest = RESULTS_DIR / "latest.json"
    if not latest.exists():
        return figures
    ran = {figure["benchmark"] for figure in figures}
    kept = [figure for figure in json.loads(latest.read_text())["figures"] if figure["benchmark"] not in ran]
    return sorted(kept + figures, key=lambda figure: figure["benchmark"])


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def _write_docs(run: dict) -> None:
    text = DOCS.read_text()
    head, _, rest = text.partition(START)
    written, _, tail = rest.partition(END)
    rows, plan = _kept_from_docs(written, ran={figure["benchmark"] for figure in run["figures"]})
    lines = table(run["figures"]).splitlines()
    body = "\n".join(lines[:2] + sorted(lines[2:] + rows, key=lambda line: line.split(" | ", 1)[0]))
    block = (
        f"{START}\nLast run: {run['when']} on {run['database']}, Python {run['python']}, {run['machine']}"
        f"{' (quick sizes)' if run['quick'] else ''}"
        f"{'; sizes overridden: ' + ', '.join(f'{k}={v}' for k, v in run['sizes'].items()) if run['sizes'] else ''}"
        f". The last column says which run measured each figure (`--only` runs keep the others).\n\n"
        f"{body}\n\n"
        f"Sweep query plan:\n\n```\n{(run['sweep_plan'] or plan).strip()}\n```\n{END}"
    )
    DOCS.write_text(head + block + tail)


def _kept_from_docs(written: str, *, ran: set[str]) -> tuple[list[str], str]:
    """Return the table rows of the benchmarks this run did not measure, and the sweep plan, as last written.

    A fresh clone has no bench-results/: an `--only` run keeps the committed figures of the others.
    """
    rows = [
        line
        for line in written.splitlines()
        if line.startswith("| ") and not line.startswith("| benchmark |") and line[2:].split(" | ", 1)[0] not in ran
    ]
    _, _, after = written.partition("```\n")
    return rows, after.partition("```")[0]


if __name__ == "__main__":
    sys.exit(main())
