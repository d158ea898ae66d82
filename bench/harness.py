"""What every benchmark stands on: a database and a Redis of their own, the project's processes, figures."""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from devtools.processes import ManagedProcess, celery_beat, celery_worker, current_database_url, wait_until
from devtools.redis_server import RedisServer

PASSWORD = "correct-horse-battery-staple"


@dataclass
class Figure:
    """One measured figure: a median over repeats with its min and max, and how it compares."""

    benchmark: str
    name: str
    unit: str
    median: float
    min: float
    max: float
    repeats: int
    ratio: float | None = None
    baseline: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the figure as JSON-compatible data."""
        return asdict(self)


def figure(benchmark: str, name: str, unit: str, values: Sequence[float], **extra: Any) -> Figure:
    """Summarise repeated measurements as median, min and max."""
    return Figure(
        benchmark=benchmark,
        name=name,
        unit=unit,
        median=statistics.median(values),
        min=min(values),
        max=max(values),
        repeats=len(values),
        **extra,
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the value below which `fraction` of values fall (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


@dataclass
class Bench:
    """The benchmark's own Redis and database, and the settings its processes share."""

    redis: RedisServer
    work_dir: Path
    quick: bool
    process_env: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    pipeline_events_per_second: float | None = None
    sweep_plan: str = ""
    _emails: Iterator[int] = field(default_factory=lambda: iter(range(10**9)))

    def email(self, prefix: str = "bench") -> str:
        """Return an address no user of this run has."""
        return f"{prefix}-{next(self._emails)}@example.com"

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment of a project process (web, worker, beat) run against this bench."""
        return {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DJANGO_READ_DOT_ENV": "false",
            "DATABASE_URL": current_database_url(),
            "REDIS_URL": self.redis.url(),
            "EMAIL_URL": "dummymail://",
            "ADMIN_EMAILS": "ops@example.com",
            "LOG_LEVEL": "WARNING",
            **self.process_env,
            **overrides,
        }

    def worker(self, *, concurrency: int = 2, wait: bool = True, app: str = "config", **env: str) -> ManagedProcess:
        """Start `celery -A config worker` (or another app), by default until its heartbeat claims every queue."""
        log = self.work_dir / f"worker-{time.monotonic_ns()}.log"
        process = celery_worker(env=self.env(**env), log_path=log, concurrency=concurrency, loglevel="WARNING", app=app)
        process.start()
        if wait:
            # At WARNING the worker prints nothing when ready.
            wait_until(lambda: _worker_answers(process), timeout=60, describe=process.log)
        return process

    def beat(self, **env: str) -> ManagedProcess:
        """Start `celery -A config beat`."""
        log = self.work_dir / f"beat-{time.monotonic_ns()}.log"
        schedule = self.work_dir / f"beat-schedule-{time.monotonic_ns()}"
        return celery_beat(env=self.env(**env), log_path=log, schedule_path=schedule).start()

    def restart_redis_empty(self) -> None:
        """Kill Redis and start an empty one on the same port."""
        self.redis.kill()
        self.redis = RedisServer(port=self.redis.port).start()


def _worker_answers(process: ManagedProcess) -> bool:
    import redis

    from events.doorbells import broker_redis
    from events.worker import PRESENCE_KEY, expected_queues

    if not process.alive():
        raise RuntimeError(f"worker exited:\n{process.log()}")
    # Workers take no remote control (no ping): this one is ready once its heartbeat claims every queue.
    hostname = process.argv[process.argv.index("--hostname") + 1].replace("%h", socket.gethostname())
    try:
        return all(broker_redis().exists(PRESENCE_KEY.format(queue, hostname)) for queue in expected_queues())
    except (redis.RedisError, OSError):
        # A connection to a Redis restarted since (the recovery benchmark): the next try reconnects.
        return False


def resident_memory(process: ManagedProcess) -> int:
    """Return the resident memory of a process and its children, in bytes."""
    main = psutil.Process(process.pid)
    return sum(member.memory_info().rss for member in [main, *main.children(recursive=True)])


@contextmanager
def bench_environment(*, quick: bool, sizes: dict[str, int] | None = None) -> Iterator[Bench]:
    """Start a Redis, set Django up with the bench settings, create the bench database; undo it all."""
    work_dir = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    redis = RedisServer().start()
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["DJANGO_READ_DOT_ENV"] = "false"
    os.environ["REDIS_URL"] = redis.url()
    # The bench process itself logs errors only (the recovery benchmark runs with the broker down).
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    # Short recovery delays, for the bench process and every process it starts.
    process_env = {"EVENTS_SWEEP_INTERVAL": "1"}
    os.environ.update(process_env)

    import django

    django.setup()
    from django.db import connection

    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    bench = Bench(redis=redis, work_dir=work_dir, quick=quick, process_env=process_env, sizes=sizes or {})
    try:
        yield bench
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        bench.redis.stop()


def timed(function: Callable[[], Any]) -> float:
    """Return the seconds function took."""
    started = time.perf_counter()
    function()
    return time.perf_counter() - started
