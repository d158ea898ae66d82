"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from config.celery_app import app as celery_app
from crm.backends import locmem
from devtools.fakes import FakeCRM, SMTPSink, running_crm, running_smtp
from devtools.processes import ManagedProcess, celery_worker, current_database_url
from events.api import consumers_of
from events.doorbells import forget_doorbells
from events.flow import forget as forget_flow
from tests.broker import purge_queues
from tests.factories import PASSWORD, UserFactory
from users.events import UserCreated
from users.models import User
from users.signals import user_created
from users.throttle import forget_all


@pytest.fixture(autouse=True)
def _empty_queues_and_outboxes() -> Iterator[None]:
    """Start and end every test with empty queues and an empty in-memory CRM."""
    locmem.outbox.clear()
    forget_doorbells()
    forget_flow()  # the rate limits' buckets and the concurrency slots
    forget_all()  # the abuse limits' counts
    yield
    locmem.outbox.clear()
    purge_queues(celery_app)
    forget_doorbells()
    forget_flow()


@pytest.fixture(scope="session")
def _span_exporter() -> InMemorySpanExporter:
    """The SDK's in-memory exporter behind the process's tracer provider (set once: the API allows one)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


@pytest.fixture
def spans(_span_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The spans this process finishes during the test, tracing on (OTEL_* set or not)."""
    _span_exporter.clear()
    yield _span_exporter
    _span_exporter.clear()


@pytest.fixture
def captured_events() -> Iterator[list[UserCreated]]:
    """Collect every UserCreated sent while the test runs."""
    events: list[UserCreated] = []

    def capture(sender: Any, *, event: UserCreated, **kwargs: Any) -> None:
        events.append(event)

    user_created.connect(capture, dispatch_uid="tests.captured_events")
    yield events
    user_created.disconnect(dispatch_uid="tests.captured_events")


@pytest.fixture
def password() -> str:
    """A password every validator accepts."""
    return PASSWORD


@pytest.fixture
def staff_user(db: None) -> User:
    """A superuser, as an operator signs into the admin."""
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff_user: User) -> Client:
    """A client signed in as staff_user."""
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def consumer_names() -> list[str]:
    """The names of UserCreated's consumers, from the registry: no test writes the set by hand."""
    return [declared.name for declared in consumers_of(user_created)]


@pytest.fixture
def crm(settings) -> Iterator[FakeCRM]:
    """A real HTTP CRM on localhost, with the HTTP backend pointed at it (read timeout 0.5 s)."""
    with running_crm() as server:
        settings.CRM_BACKEND = "crm.backends.http.CRMBackend"
        settings.CRM_API_URL = server.url
        settings.CRM_API_KEY = "secret-key"
        settings.CRM_READ_TIMEOUT = 0.5
        yield server


# A real worker and the real servers it talks to: the end-to-end and browser tests share them.


@pytest.fixture
def smtp_server() -> Iterator[SMTPSink]:
    with running_smtp() as sink:
        yield sink


@pytest.fixture
def crm_server() -> Iterator[FakeCRM]:
    with running_crm() as crm:
        yield crm


def worker_env(smtp_server: SMTPSink, crm_server: FakeCRM, **extra: str) -> dict[str, str]:
    """The environment of a test's worker: the test database and Redis, the SMTP sink, the CRM, and extra."""
    return {
        "DATABASE_URL": current_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "EMAIL_URL": smtp_server.url,
        "CRM_BACKEND": "crm.backends.http.CRMBackend",
        "CRM_API_URL": crm_server.url,
        "ADMIN_EMAILS": ",".join(settings.ADMIN_EMAILS),
        **extra,
    }


@pytest.fixture
def worker(
    transactional_db: None, smtp_server: SMTPSink, crm_server: FakeCRM, tmp_path: Path
) -> Iterator[ManagedProcess]:
    """A real `celery -A config worker` on the test database, the test Redis, the SMTP sink and the CRM."""
    process = celery_worker(env=worker_env(smtp_server, crm_server), log_path=tmp_path / "worker.log").start()
    yield process
    process.stop()
