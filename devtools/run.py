"""Run the whole system in the foreground: Redis (when none answers), web, worker and scheduler.

`make run` calls this after installing. A worker or scheduler that exits on its own is started
again, after a back-off; Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import environ

from devtools.redis_server import ensure_redis, is_reachable

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = BASE_DIR / ".run"
DOT_ENV = BASE_DIR / ".env"
DEFAULT_PORT = "8000"
# Host names that mean "this machine": a SITE_URL on one of them follows the port `make run` serves on.
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
COLOURS = {"web": "\033[36m", "worker": "\033[35m", "worker-external": "\033[34m", "beat": "\033[33m"}
RESET = "\033[0m"


def write_dot_env(path: Path = DOT_ENV) -> None:
    """Create path (.env) from .env.example with a fresh secret key and admin password."""
    lines = []
    for line in (BASE_DIR / ".env.example").read_text().splitlines():
        if line == "DJANGO_SECRET_KEY=":
            line = f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}"
        elif line == "DJANGO_SUPERUSER_PASSWORD=":
            line = f"DJANGO_SUPERUSER_PASSWORD={secrets.token_urlsafe(12)}"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    print(f"Created {path.name} with a new secret key and admin password.")


def read_port(environ: Mapping[str, str]) -> str:
    """Return the port to serve on: PORT, or 8000; exit with a message if it is not a TCP port."""
    port = environ.get("PORT") or DEFAULT_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        sys.exit(f"PORT must be a TCP port number (1-65535), not {port!r}.")
    return str(int(port))


def site_url(*, configured: str, port: str) -> str:
    """Return the address e-mail links point at: SITE_URL, on the port in use when it names this machine."""
    if not configured:
        return f"http://127.0.0.1:{port}"
    parts = urlsplit(configured)
    if parts.hostname not in LOCAL_HOSTS:
        # A tunnel or a proxy in front of the site: its address is not ours to change.
        return configured
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return urlunsplit(parts._replace(netloc=f"{host}:{port}"))


def serve_site_on_port(environ: MutableMapping[str, str]) -> str:
    """Read PORT and point SITE_URL at it in the environment the children inherit; return the port."""
    port = read_port(environ)
    # The worker renders the e-mails' links from SITE_URL, which .env sets to the default port.
    environ["SITE_URL"] = site_url(configured=environ.get("SITE_URL", ""), port=port)
    return port


def manage(*args: str) -> None:
    """Run a manage.py command to completion, failing the run if it fails."""
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, check=True)


def pump(name: str, process: subprocess.Popen[str]) -> None:
    """Copy a child's output to ours, each line prefixed with the child's name."""
    colour = COLOURS.get(name, "") if sys.stdout.isatty() else ""
    reset = RESET if colour else ""
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(f"{colour}{name:>6} |{reset} {line}")
        sys.stdout.flush()


def start(name: str, *command: str) -> subprocess.Popen[str]:
    """Start a child in its own process group, so Ctrl-C reaches it only through us, in order."""
    process = subprocess.Popen(
        command,
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    threading.Thread(target=pump, args=(name, process), daemon=True).start()
    return process


@dataclass
class Backoff:
    """The waits before restarting a process: `first`, doubling up to `cap`; `first` again once it stayed up."""

    first: float = 1.0
    cap: float = 30.0
    # A process that ran this long was healthy: its next exit is a new failure, not the same one.
    reset_after: float = 60.0
    _next: float = field(init=False)

    def __post_init__(self) -> None:
        self._next = self.first

    def delay(self, *, uptime: float) -> float:
        """Return the wait before restarting a process that ran for uptime seconds."""
        if uptime >= self.reset_after:
            self._next = self.first
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay


@dataclass
class Child:
    """A process of the run, restarted after it exits on its own when `restart` is set."""

    name: str
    command: Sequence[str]
    restart: bool = False
    backoff: Backoff = field(default_factory=Backoff)
    process: subprocess.Popen[str] | None = None
    started_at: float = 0.0
    restart_at: float | None = None

    def start(self) -> Child:
        """Start the process."""
        self.process = start(self.name, *self.command)
        self.started_at = time.monotonic()
        self.restart_at = None
        return self


def exit_status(code: int) -> str:
    """Say how a process ended: its exit code, and the signal that killed it if one did."""
    if code < 0:
        try:
            return f"code {code} ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return f"code {code}"


def kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL what is left of an exited child's process group: a killed worker's pool must not outlive it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def supervise(children: Sequence[Child], stopping: threading.Event, *, tick: float = 0.5) -> int:
    """Restart each restartable child that exits, until stopping is set (0) or another child exits (1)."""
    while not stopping.wait(tick):
        now = time.monotonic()
        for child in children:
            assert child.process is not None
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.start()
                continue
            code = child.process.poll()
            if code is None:
                continue
            if not child.restart:
                print(f"\n  {child.name} exited with {exit_status(code)}; stopping the rest.", flush=True)
                return 1
            # Kombu can stop a worker when Redis dies under it (docs/upstream/kombu-restore-unacked.md):
            # the rows wait, but nothing drains them until a worker runs again.
            kill_group(child.process)
            delay = child.backoff.delay(uptime=now - child.started_at)
            print(f"\n  {child.name} exited with {exit_status(code)}; restarting it in {delay:g} s.", flush=True)
            child.restart_at = now + delay
    return 0


def stop(children: Sequence[Child], *, timeout: float = 15.0) -> None:
    """Stop the children: SIGTERM to each group (the worker finishes its tasks), then SIGKILL."""
    processes = [child.process for child in children if child.process is not None]
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line: where the run keeps its state and its settings."""
    parser = argparse.ArgumentParser(prog="python -m devtools.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run-dir", type=Path, default=RUN_DIR, help="the Redis data and beat schedule (default: .run)"
    )
    parser.add_argument("--env-file", type=Path, default=DOT_ENV, help="the settings file (default: .env)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare, start everything, print the URLs and wait for Ctrl-C."""
    args = parse_args(argv)
    os.chdir(BASE_DIR)
    if not args.env_file.exists():
        write_dot_env(args.env_file)
    environ.Env.read_env(args.env_file)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    port = serve_site_on_port(os.environ)
    run_dir = args.run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)

    requested = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    redis_note = "already running" if is_reachable(requested) else "started by this run"
    os.environ["REDIS_URL"] = ensure_redis(requested, data_dir=run_dir / "redis", persistent=True)

    manage("migrate", "--no-input", "-v", "0")
    manage("ensure_superuser")

    celery = [sys.executable, "-m", "celery", "-A", "config"]
    children = [
        # The web is not restarted: runserver exits on a busy port or a broken import, for you to see.
        Child("web", [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]),
        # Two kinds of worker, as the Procfile: a stalled mail server never holds up the audit log.
        Child("worker", [*celery, "worker", "--consumers", "atomic", "--loglevel", "INFO"], restart=True),
        Child("worker-external", [*celery, "worker", "--consumers", "external", "--loglevel", "INFO"], restart=True),
        Child(
            "beat",
            [*celery, "beat", "--loglevel", "INFO", "--schedule", str(run_dir / "celerybeat-schedule")],
            restart=True,
        ),
    ]
    for child in children:
        child.start()
    site = f"http://127.0.0.1:{port}"
    print(
        f"\n  Relay is starting.\n"
        f"    Sign up:  {site}/signup/\n"
        f"    Log in:   {site}/login/\n"
        f"    Admin:    {site}/admin/  (DJANGO_SUPERUSER_EMAIL / DJANGO_SUPERUSER_PASSWORD in .env)\n"
        f"    Broker:   {os.environ['REDIS_URL']} ({redis_note})\n"
        f"    E-mails:  links point at {os.environ['SITE_URL']} (SITE_URL)\n"
        f"  E-mails are printed below by the worker unless EMAIL_URL says otherwise. Ctrl-C stops everything.\n",
        flush=True,
    )

    stopping = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    exit_code = supervise(children, stopping)
    print("\n  Stopping web, worker and scheduler...", flush=True)
    stop(children)
    print("  Stopped.", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
