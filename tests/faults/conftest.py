"""The fault tests' stack: a Redis they may stop, freeze or wipe, web, workers and beat as processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from analytics.models import AnalyticsEvent
from audit.models import AuditEntry
from crm.models import ContactSync
from devtools.fakes import FakeCRM, SMTPSink
from devtools.processes import (
    BASE_DIR,
    ManagedProcess,
    WebServer,
    celery_beat,
    celery_worker,
    current_database_url,
    wait_until,
)
from devtools.redis_server import RedisServer
from events.api import consumers_of
from events.models import Delivery, Event
from notifications.models import Notification
from users.events import UserCreated
from users.models import User
from users.signals import user_created

ADMIN_EMAILS = ["ops@example.com"]
# The consumers of a signup (UserCreated), from the registry.
SIGNUP_CONSUMERS = consumers_of(user_created)
CONSUMER_COUNT = len(SIGNUP_CONSUMERS)

# Short enough that each fault heals in seconds; the production defaults are in base settings.
FAST_RECOVERY = {
    "EVENTS_SWEEP_INTERVAL": "0.5",
    "EVENTS_LEASE": "3",
    "EVENTS_LEASE_RENEW_EVERY": "1",
    "EVENTS_RETRY_FIRST": "0.5",
    "EVENTS_RETRY_CAP": "2",
    "EVENTS_TASK_TIME_LIMIT": "8",
    "CRM_READ_TIMEOUT": "0.5",
    # A fault that trips a breaker (five failures in a row) heals within a second of its end.
    "EVENTS_CIRCUIT_PROBE_EVERY": "1",
}


@dataclass
class Stack:
    """Everything a signup touches, each piece a real server or process the test can break."""

    redis: RedisServer
    smtp: SMTPSink
    crm: FakeCRM
    tmp_path: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: list[ManagedProcess] = field(default_factory=list)
    _web: WebServer | None = None

    def _log(self, name: str) -> Path:
        return self.tmp_path / f"{name}-{len(self.processes)}.log"

    def worker(self, *, concurrency: int = 2, consumers: str = "all") -> ManagedProcess:
        """Start a `celery -A config worker` (`--consumers atomic|external` for one kind of consumer)."""
        process = celery_worker(
            env=self.env, log_path=self._log("worker"), concurrency=concurrency, consumers=consumers
        ).start()
        self.processes.append(process)
        return process

    def beat(self) -> ManagedProcess:
        """Start `celery -A config beat` (the sweep)."""
        process = celery_beat(env=self.env, log_path=self._log("beat"), schedule_path=self.tmp_path / "beat-schedule")
        self.processes.append(process.start())
        return process

    @property
    def web(self) -> WebServer:
        """The web server, started on first use."""
        if self._web is None:
            self._web = WebServer(env=self.env, log_path=self._log("web"))
            self.processes.append(self._web.start())
            self._web.wait_ready()
        return self._web

    def manage(self, *args: str, script: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a manage.py command (or a Python script with Django set up) in a process of its own."""
        argv = [sys.executable, "manage.py", *args] if script is None else [sys.executable, "-c", script]
        return subprocess.run(
            argv,
            cwd=BASE_DIR,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", **self.env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def freeze_redis(self) -> None:
        """Stop the Redis process without closing its sockets: connections hang, nothing is refused."""
        assert self.redis.process is not None
        os.kill(self.redis.process.pid, signal.SIGSTOP)

    def thaw_redis(self) -> None:
        """Let a frozen Redis run again."""
        assert self.redis.process is not None
        os.kill(self.redis.process.pid, signal.SIGCONT)

    def restart_redis_empty(self) -> None:
        """Kill Redis (it keeps nothing on disk) and start an empty one on the same port."""
        self.redis.kill()
        self.redis = RedisServer(port=self.redis.port).start()

    def queues(self) -> str:
        """The length of every queue and of the unacknowledged set, for a failure message."""
        client = redis.Redis.from_url(self.redis.url(), socket_timeout=1)
        names = [key.decode() for key in client.keys("*")]

        def describe(name: str) -> str:
            kind = client.type(name)
            if kind == b"list":
                return str(client.llen(name))
            if kind == b"set":
                return repr(sorted(member.decode().split("\x06\x16")[0] for member in client.smembers(name)))
            return kind.decode()

        return "Redis: " + ", ".join(f"{name}={describe(name)}" for name in sorted(names))

    def logs(self) -> str:
        """The tail of every process's output, for a failure message."""
        return "\n".join(f"--- {process.argv[2:5]} ---\n{process.log()[-3000:]}" for process in self.processes)


def assert_every_effect_done_once(stack: Stack, emails: list[str], *, timeout: float = 45.0) -> None:
    """Wait until nothing is pending, then check every user has exactly one of each effect."""
    expected_messages = len(emails) * (1 + len(ADMIN_EMAILS))

    def settled() -> bool:
        return (
            Delivery.objects.filter(status=Delivery.Status.PENDING).count() == 0
            and Delivery.objects.filter(status=Delivery.Status.DONE, event__name=UserCreated.name).count()
            == len(emails) * CONSUMER_COUNT
            and len(stack.smtp.messages) >= expected_messages
        )

    wait_until(settled, timeout=timeout, describe=lambda: f"{_state()}\n{stack.queues()}\n{stack.logs()}")
    time.sleep(1.0)  # Give a duplicate, if any, the time to show itself.

    users = list(User.objects.filter(email__in=emails))
    assert sorted(user.email for user in users) == sorted(emails)
    # A replay adds an operator's event (for the audit log): count the signups' events only.
    assert Event.objects.filter(name=UserCreated.name).count() == len(emails)
    assert not Delivery.objects.exclude(status=Delivery.Status.DONE).exists(), _state()
    sent_to = Counter(message["X-Envelope-To"] for message in stack.smtp.messages)
    assert sent_to == Counter({**{email: 1 for email in emails}, **{admin: len(emails) for admin in ADMIN_EMAILS}})
    for user in users:
        event = Event.objects.get(payload__user_id=user.pk)
        assert Notification.objects.filter(user=user, kind=Notification.Kind.WELCOME).count() == 1
        assert Notification.objects.filter(user=user, kind=Notification.Kind.ADMIN_NOTICE).count() == len(ADMIN_EMAILS)
        assert AuditEntry.objects.filter(target_user_id=user.pk).count() == 1
        assert AnalyticsEvent.objects.filter(user=user).count() == 1
        assert ContactSync.objects.filter(user=user).count() == 1
        keys = {
            request.headers["idempotency-key"]
            for request in stack.crm.requests
            if request.path == f"/contacts/{user.pk}"
        }
        assert keys == {str(event.pk)}


def _state() -> str:
    rows = Delivery.objects.values_list(
        "event_id", "consumer", "status", "attempts", "lease_owner", "due_at", "last_error"
    )
    return "Deliveries:\n" + "\n".join(
        f"  {event_id} {consumer} {status} attempts={attempts} lease={owner!r} due={due_at} {error[-200:]!r}"
        for event_id, consumer, status, attempts, owner, due_at, error in rows
    )


@pytest.fixture
def stack(transactional_db: None, tmp_path: Path) -> Iterator[Stack]:
    """A Redis of the test's own, an SMTP sink, a CRM, and the processes the test starts."""
    redis = RedisServer().start()
    smtp = SMTPSink().start()
    crm = FakeCRM().start()
    built = Stack(redis=redis, smtp=smtp, crm=crm, tmp_path=tmp_path)
    built.env = {
        "DATABASE_URL": current_database_url(),
        "REDIS_URL": redis.url(),
        "EMAIL_URL": smtp.url,
        "CRM_BACKEND": "crm.backends.http.CRMBackend",
        "CRM_API_URL": crm.url,
        "ADMIN_EMAILS": ",".join(ADMIN_EMAILS),
        **FAST_RECOVERY,
    }
    yield built
    for process in reversed(built.processes):
        process.stop(timeout=10)
    if built.redis.process is not None and built.redis.process.poll() is None:
        os.kill(built.redis.process.pid, signal.SIGCONT)
    built.redis.stop()
    smtp.stop()
    crm.stop()
