"""Fixtures of the end-to-end tests: a real worker process, a real SMTP server, a real HTTP CRM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from devtools.fakes import FakeCRM, SMTPSink, running_crm, running_smtp
from devtools.processes import ManagedProcess, celery_worker, current_database_url


@pytest.fixture
def smtp_server() -> Iterator[SMTPSink]:
    with running_smtp() as sink:
        yield sink


@pytest.fixture
def crm_server() -> Iterator[FakeCRM]:
    with running_crm() as crm:
        yield crm


@pytest.fixture
def worker(
    transactional_db: None, smtp_server: SMTPSink, crm_server: FakeCRM, tmp_path: Path
) -> Iterator[ManagedProcess]:
    """A real `celery -A config worker` on the test database, the test Redis, the SMTP sink and the CRM."""
    process = celery_worker(
        env={
            "DATABASE_URL": current_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "EMAIL_URL": smtp_server.url,
            "CRM_BACKEND": "crm.backends.http.CRMBackend",
            "CRM_API_URL": crm_server.url,
            "ADMIN_EMAILS": ",".join(settings.ADMIN_EMAILS),
        },
        log_path=tmp_path / "worker.log",
    ).start()
    yield process
    process.stop()
