"""Real processes for the end-to-end tests, fault tests and benchmarks, started the way users start them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil
import requests
from django.db import connection

from devtools.redis_server import free_port

BASE_DIR = Path(__file__).resolve().parent.parent


def current_database_url() -> str:
    """Return a DATABASE_URL naming the database this process uses (e.g. the test database)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    if db["ENGINE"] == "django.db.backends.postgresql":
        credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    raise NotImplementedError(f"No DATABASE_URL for {db['ENGINE']}")


class ManagedProcess:
    """A child process in its own process group, its output in a log file."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str], log_path: Path) -> None:
        self.argv = list(argv)
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        """Start the process."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.process is not None and self.process.poll() is None

    def stop(self, *, timeout: float = 20.0) -> None:
        """SIGTERM the group (a worker finishes its tasks), SIGKILL it if that takes too long."""
        if not self.alive():
            return
        os.killpg(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a crash or an OOM kill would."""
        if self.process is None:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def children(self) -> list[psutil.Process]:
        """Return the process's children (a prefork worker's pool processes)."""
        return psutil.Process(self.pid).children() if self.alive() else []

    def log(self) -> str:
        """Return what the process printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_output(self, text: str, *, timeout: float = 30.0) -> ManagedProcess:
        """Wait until the process has printed text (e.g. a worker's "ready.")."""
        wait_until(lambda: text in self.log(), timeout=timeout, describe=self.log)
        return self


def celery_worker(
    *,
    env: dict[str, str],
    log_path: Path,
    concurrency: int = 2,
    loglevel: str | None = None,
    app: str = "config",
    consumers: str = "all",
) -> ManagedProcess:
    """`celery -A config worker`: it consumes every queue the project declares (or one kind's, see events.worker)."""
    return ManagedProcess(
        [
            sys.executable, "-m", "celery", "-A", app, "worker",
            "--loglevel", loglevel or os.environ.get("TEST_WORKER_LOGLEVEL", "INFO"),
            "--concurrency", str(concurrency),
            "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h",
            "--without-mingle", "--without-gossip",
            *(["--consumers", consumers] if consumers != "all" else []),
        ],
        env=env,
        log_path=log_path,
    )  # fmt: skip


def celery_beat(*, env: dict[str, str], log_path: Path, schedule_path: Path) -> ManagedProcess:
    """`celery -A config beat`: it runs the delivery sweep."""
    return ManagedProcess(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(schedule_path),
        ],
        env=env,
        log_path=log_path,
    )


class WebServer(ManagedProcess):
    """The project served by `manage.py runserver`, with a helper to sign up through the real form."""

    def __init__(self, *, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        super().__init__(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
            env=env,
            log_path=log_path,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, *, timeout: float = 30.0) -> WebServer:
        """Wait until the signup page answers."""

        def answers() -> bool:
            try:
                return requests.get(f"{self.url}/signup/", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(answers, timeout=timeout, describe=self.log)
        return self

    def signup(
        self, email: str, password: str, *, name: str = "Fault Tester", path: str = "/signup/"
    ) -> tuple[int, float]:
        """Sign up through the form at path; return the status code and the seconds the POST took."""
        session = requests.Session()
        session.get(f"{self.url}{path}", timeout=10)
        started = time.perf_counter()
        response = session.post(
            f"{self.url}{path}",
            data={
                "email": email,
                "name": name,
                "password1": password,
                "password2": password,
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"{self.url}{path}"},
            allow_redirects=False,
            timeout=30,
        )
        return response.status_code, time.perf_counter() - started


def procfile_command(process: str) -> str:
    """Return the Procfile's command line for process (e.g. "web")."""
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        if line.startswith(f"{process}:"):
            return line.partition(":")[2].strip()
    raise LookupError(f"The Procfile has no {process!r} process.")


class ProductionWebServer(ManagedProcess):
    """The web process exactly as the Procfile's `web` line starts it (a shell expands it), on a free port."""

    def __init__(self, *, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        super().__init__(
            ["/bin/sh", "-c", f"exec {procfile_command('web')}"],
            # The virtual environment's gunicorn, as a deployment has it on its PATH.
            env={
                **env,
                "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', os.environ['PATH'])}",
                "PORT": str(self.port),
            },
            log_path=log_path,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, *, timeout: float = 60.0) -> ProductionWebServer:
        """Wait until /healthz answers (the master listens before its workers have loaded Django)."""

        def answers() -> bool:
            if not self.alive():
                raise AssertionError(f"The web process exited. {self.log()}")
            try:
                return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(answers, timeout=timeout, describe=self.log)
        return self


def wait_until(condition: Callable[[], bool], *, timeout: float, describe: Callable[[], str] = lambda: "") -> None:
    """Poll condition until it holds, failing with describe() after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"Condition not met within {timeout} s. {describe()}")
        time.sleep(0.1)
