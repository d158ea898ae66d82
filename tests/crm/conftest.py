"""Fixtures of the crm tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.fakes import FakeCRM, running_crm


@pytest.fixture
def crm(settings) -> Iterator[FakeCRM]:
    """A real HTTP CRM on localhost, with the HTTP backend pointed at it (read timeout 0.5 s)."""
    with running_crm() as server:
        settings.CRM_BACKEND = "crm.backends.http.CRMBackend"
        settings.CRM_API_URL = server.url
        settings.CRM_API_KEY = "secret-key"
        settings.CRM_READ_TIMEOUT = 0.5
        yield server
