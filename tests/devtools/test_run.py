from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from django.core import mail

from devtools.processes import BASE_DIR, wait_until
from devtools.redis_server import free_port
from devtools.run import Backoff, Child, exit_status, read_port, serve_site_on_port, site_url, stop, supervise
from notifications.services import welcome_email_send
from tests.factories import UserCreatedFactory, UserFactory


@pytest.mark.parametrize(
    "configured, expected",
    [
        ("", "http://127.0.0.1:8123"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8123"),
        ("http://localhost:8000", "http://localhost:8123"),
        ("http://localhost", "http://localhost:8123"),
        ("http://[::1]:8000/relay", "http://[::1]:8123/relay"),
        ("https://relay.example.com", "https://relay.example.com"),
        ("https://abc123.ngrok.app:8443", "https://abc123.ngrok.app:8443"),
    ],
)
def test_site_url_on_this_machine_follows_the_port_in_use(configured: str, expected: str) -> None:
    assert site_url(configured=configured, port="8123") == expected


def test_port_defaults_to_8000() -> None:
    assert read_port({}) == "8000"
    assert read_port({"PORT": ""}) == "8000"
    assert read_port({"PORT": "8123"}) == "8123"


@pytest.mark.parametrize("port", ["http", "0", "65536", "-1", "80 80"])
def test_a_port_that_is_no_tcp_port_stops_the_run_with_a_message(port: str) -> None:
    with pytest.raises(SystemExit, match="PORT must be a TCP port number"):
        read_port({"PORT": port})


def test_children_inherit_a_site_url_on_the_port_from_the_environment() -> None:
    # given: PORT from the shell, SITE_URL as .env.example writes it
    environ = {"PORT": "8123", "SITE_URL": "http://127.0.0.1:8000"}

    # when
    port = serve_site_on_port(environ)

    # then
    assert port == "8123"
    assert environ["SITE_URL"] == "http://127.0.0.1:8123"


@pytest.mark.django_db
def test_welcome_email_links_to_the_port_make_run_serves_on(settings) -> None:
    # given: the environment `PORT=8123 make run` gives the worker
    environ = {"PORT": "8123", "SITE_URL": "http://127.0.0.1:8000"}
    serve_site_on_port(environ)
    settings.SITE_URL = environ["SITE_URL"]
    user = UserFactory(name="Ann")

    # when
    welcome_email_send(event=UserCreatedFactory(user_id=user.pk))

    # then
    message = mail.outbox[0]
    assert "http://127.0.0.1:8123/confirm-email/" in message.body
    assert 'href="http://127.0.0.1:8123/confirm-email/' in message.alternatives[0].content


def _exits(code: int) -> list[str]:
    return [sys.executable, "-c", f"import sys; sys.exit({code})"]


SLEEPS = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def stopping() -> Iterator[threading.Event]:
    """The run's Ctrl-C, set at the end of the test at the latest."""
    event = threading.Event()
    yield event
    event.set()


def _supervising(children: list[Child], stopping: threading.Event) -> tuple[threading.Thread, list[int]]:
    """Start the children and supervise them in a thread; the list gets supervise's exit code."""
    for child in children:
        child.start()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(supervise(children, stopping, tick=0.01)), daemon=True)
    thread.start()
    return thread, result


def test_the_restart_wait_doubles_up_to_its_cap_and_starts_over_after_a_process_stayed_up() -> None:
    backoff = Backoff(first=1, cap=30, reset_after=60)

    waits = [backoff.delay(uptime=0.2) for _ in range(7)]

    assert waits == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay(uptime=61) == 1
    assert backoff.delay(uptime=0.2) == 2


def test_a_worker_that_exits_is_restarted_after_a_growing_wait(
    stopping: threading.Event, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    worker = Child("worker", _exits(3), restart=True, backoff=Backoff(first=0.05, cap=0.2))
    pids = set()

    # when: it exits at once, each time it starts
    thread, result = _supervising([worker], stopping)

    def started_four_times() -> bool:
        pids.add(worker.process.pid)
        return len(pids) >= 4

    wait_until(started_four_times, timeout=30)
    stopping.set()
    thread.join(timeout=10)

    # then
    assert result == [0]
    restarts = [line.strip() for line in capsys.readouterr().out.splitlines() if "restarting" in line]
    assert restarts[:3] == [
        "worker exited with code 3; restarting it in 0.05 s.",
        "worker exited with code 3; restarting it in 0.1 s.",
        "worker exited with code 3; restarting it in 0.2 s.",
    ]


def test_a_process_that_is_not_restarted_stops_the_run(
    stopping: threading.Event, capsys: pytest.CaptureFixture[str]
) -> None:
    web = Child("web", _exits(2))
    worker = Child("worker", SLEEPS, restart=True)

    thread, result = _supervising([web, worker], stopping)
    thread.join(timeout=30)
    stop([web, worker], timeout=10)

    assert result == [1]
    assert "web exited with code 2; stopping the rest." in capsys.readouterr().out
    assert worker.process.returncode == -signal.SIGTERM


def test_nothing_is_restarted_once_the_run_is_stopping(
    stopping: threading.Event, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: a worker that runs
    worker = Child("worker", SLEEPS, restart=True, backoff=Backoff(first=0.01))
    thread, result = _supervising([worker], stopping)
    first = worker.process

    # when: Ctrl-C
    stopping.set()
    thread.join(timeout=10)
    stop([worker], timeout=10)

    # then: stopped, not started again
    assert result == [0]
    assert worker.process is first
    assert first.returncode == -signal.SIGTERM
    assert "restarting" not in capsys.readouterr().out


def test_an_exit_by_signal_names_the_signal() -> None:
    assert exit_status(-9) == "code -9 (SIGKILL)"
    assert exit_status(1) == "code 1"


@pytest.mark.faults
def test_make_run_restarts_a_worker_killed_under_it(tmp_path: Path) -> None:
    # given: `make run`'s runner on ports of its own, with a Redis, a database and settings of its own
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_READ_DOT_ENV": "false",
        "PORT": str(free_port()),
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        runner = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devtools.run",
                "--run-dir",
                str(tmp_path / "run"),
                "--env-file",
                str(tmp_path / ".env"),
            ],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output() -> str:
        return log_path.read_text(errors="replace")

    def workers_ready() -> int:
        # Celery's own line: the welcome e-mail the worker prints says "ready." too.
        return len(re.findall(r"celery@\S+ ready\.", output()))

    def workers(kind: str) -> list[psutil.Process]:
        found = []
        for child in psutil.Process(runner.pid).children():
            try:
                cmdline = child.cmdline()
                if "worker" in cmdline and kind in cmdline and child.status() != psutil.STATUS_ZOMBIE:
                    found.append(child)
            except psutil.NoSuchProcess:
                pass  # the killed worker, reaped meanwhile
        return found

    try:
        # given: both kinds of worker (atomic and external consumers) ready
        wait_until(
            lambda: workers_ready() == 2 and len(workers("atomic")) == len(workers("external")) == 1,
            timeout=90,
            describe=output,
        )
        [first] = workers("atomic")
        [external] = workers("external")

        # when
        first.kill()

        # then: the runner says so and starts another worker, which gets ready; the other is untouched
        wait_until(lambda: workers_ready() == 3, timeout=60, describe=output)
        assert "worker exited with code -9 (SIGKILL); restarting it in 1 s." in output()
        [second] = workers("atomic")
        assert second.pid != first.pid
        assert [process.pid for process in workers("external")] == [external.pid]
    finally:
        # when: Ctrl-C (the runner stops everything it started)
        runner.send_signal(signal.SIGINT)
        try:
            runner.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for process in psutil.Process(runner.pid).children(recursive=True):
                process.kill()
            runner.kill()
            runner.wait()

    # then: stopped, nothing restarted
    assert runner.returncode == 0, output()
    assert output().count("restarting it in") == 1
    assert "Stopped." in output()
