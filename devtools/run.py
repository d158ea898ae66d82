"""Run the whole system in the foreground: Redis (when none answers), web, worker and scheduler.

`make run` calls this after installing. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, MutableMapping
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
COLOURS = {"web": "\033[36m", "worker": "\033[35m", "beat": "\033[33m"}
RESET = "\033[0m"


def write_dot_env() -> None:
    """Create .env from .env.example with a fresh secret key and admin password."""
    lines = []
    for line in (BASE_DIR / ".env.example").read_text().splitlines():
        if line == "DJANGO_SECRET_KEY=":
            line = f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}"
        elif line == "DJANGO_SUPERUSER_PASSWORD=":
            line = f"DJANGO_SUPERUSER_PASSWORD={secrets.token_urlsafe(12)}"
        lines.append(line)
    DOT_ENV.write_text("\n".join(lines) + "\n")
    DOT_ENV.chmod(0o600)
    print(f"Created {DOT_ENV.name} with a new secret key and admin password.")


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


def stop(processes: dict[str, subprocess.Popen[str]], *, timeout: float = 15.0) -> None:
    """Stop the children: SIGTERM to each group (the worker finishes its tasks), then SIGKILL."""
    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def main() -> int:
    """Prepare, start everything, print the URLs and wait for Ctrl-C."""
    os.chdir(BASE_DIR)
    if not DOT_ENV.exists():
        write_dot_env()
    environ.Env.read_env(DOT_ENV)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    port = serve_site_on_port(os.environ)
    RUN_DIR.mkdir(exist_ok=True)

    requested = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    redis_note = "already running" if is_reachable(requested) else "started by this run"
    os.environ["REDIS_URL"] = ensure_redis(requested, data_dir=RUN_DIR / "redis", persistent=True)

    manage("migrate", "--no-input", "-v", "0")
    manage("ensure_superuser")

    celery = [sys.executable, "-m", "celery", "-A", "config"]
    processes = {
        "web": start("web", sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"),
        "worker": start("worker", *celery, "worker", "--loglevel", "INFO"),
        "beat": start(
            "beat", *celery, "beat", "--loglevel", "INFO", "--schedule", str(RUN_DIR / "celerybeat-schedule")
        ),
    }
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
    exit_code = 0
    while not stopping.wait(0.5):
        exited = [name for name, process in processes.items() if process.poll() is not None]
        if exited:
            print(f"\n  {', '.join(exited)} exited; stopping the rest.", flush=True)
            exit_code = 1
            break
    print("\n  Stopping web, worker and scheduler...", flush=True)
    stop(processes)
    print("  Stopped.", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
