from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from crm.backends import get_backend, locmem
from crm.backends.base import Contact, CRMPermanentError, CRMTransientError
from crm.backends.http import CRMBackend as HTTPBackend
from crm.backends.http import parse_retry_after
from crm.backends.local import CRMBackend as LocalBackend
from devtools.fakes import CRMResponse, FakeCRM
from devtools.redis_server import free_port

CONTACT = Contact(user_id=7, email="ann@example.com", name="Ann", signed_up_at=datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
KEY = "7d7a4b4e-8a55-4f55-9a4b-3f1b7c1f6d11"


def test_http_backend_speaks_the_crm_contract(crm: FakeCRM) -> None:
    result = get_backend().upsert_contact(CONTACT, idempotency_key=KEY)

    assert result.status_code == 200
    [request] = crm.requests
    assert (request.method, request.path) == ("PUT", "/contacts/7")
    assert request.headers["authorization"] == "Bearer secret-key"
    assert request.headers["idempotency-key"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert request.body == {"email": "ann@example.com", "name": "Ann", "signed_up_at": "2026-11-27T09:00:00+00:00"}


@pytest.mark.parametrize("status", [200, 201, 204])
def test_http_backend_treats_2xx_as_synced(crm: FakeCRM, status: int) -> None:
    crm.answer(CRMResponse(status=status, body=""))

    result = get_backend().upsert_contact(CONTACT, idempotency_key=KEY)

    assert (result.status_code, result.already_synced) == (status, False)


def test_http_backend_treats_409_as_already_synced(crm: FakeCRM) -> None:
    crm.answer(CRMResponse(status=409))

    result = get_backend().upsert_contact(CONTACT, idempotency_key=KEY)

    assert (result.status_code, result.already_synced) == (409, True)


def test_http_backend_treats_429_as_transient_and_reads_retry_after(crm: FakeCRM) -> None:
    crm.answer(CRMResponse(status=429, headers={"Retry-After": "7"}))

    with pytest.raises(CRMTransientError) as error:
        get_backend().upsert_contact(CONTACT, idempotency_key=KEY)

    assert (error.value.status, error.value.retry_after) == (429, 7.0)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_backend_treats_5xx_as_transient(crm: FakeCRM, status: int) -> None:
    crm.answer(CRMResponse(status=status, body="upstream down"))

    with pytest.raises(CRMTransientError) as error:
        get_backend().upsert_contact(CONTACT, idempotency_key=KEY)

    assert error.value.status == status


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_http_backend_treats_other_4xx_as_permanent_with_the_response(crm: FakeCRM, status: int) -> None:
    crm.answer(CRMResponse(status=status, body='{"error": "bad contact"}'))

    with pytest.raises(CRMPermanentError) as error:
        get_backend().upsert_contact(CONTACT, idempotency_key=KEY)

    assert (error.value.status, error.value.body) == (status, '{"error": "bad contact"}')


def test_http_backend_read_timeout_is_transient(crm: FakeCRM) -> None:
    crm.answer(CRMResponse(delay=2.0))

    with pytest.raises(CRMTransientError, match="timed out"):
        get_backend().upsert_contact(CONTACT, idempotency_key=KEY)


def test_http_backend_connection_refused_is_transient(settings) -> None:
    settings.CRM_API_URL = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(CRMTransientError, match="unreachable"):
        HTTPBackend().upsert_contact(CONTACT, idempotency_key=KEY)


def test_http_backend_always_sets_connect_and_read_timeouts(settings) -> None:
    settings.CRM_API_URL = "http://crm.invalid"

    backend = HTTPBackend()

    assert backend.timeout.connect_timeout > 0 and backend.timeout.read_timeout > 0
    assert backend.timeout.total >= backend.timeout.read_timeout


@contextmanager
def trickling_crm(*, head: bytes) -> Iterator[str]:
    """A CRM that sends head, then one more byte every 0.2 s for as long as the client listens."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            try:
                connection.sendall(head)
                while not stop.wait(0.2):
                    connection.sendall(b"x")
            except OSError:
                pass  # the client gave up: what the test wants

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        server.close()


def test_http_backend_gives_up_on_a_crm_that_trickles_its_answer(settings) -> None:
    # given: each byte well within the read timeout, the whole answer never
    settings.CRM_READ_TIMEOUT = 0.5
    settings.CRM_TOTAL_TIMEOUT = 1.5
    with trickling_crm(head=b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n") as url:
        settings.CRM_API_URL = url
        started = time.monotonic()

        # when / then: a transient failure at about the deadline, not when the CRM stops
        with pytest.raises(CRMTransientError, match="timed out"):
            HTTPBackend().upsert_contact(CONTACT, idempotency_key=KEY)
    assert time.monotonic() - started < 4


def test_http_backend_refuses_to_run_without_a_key(settings) -> None:
    settings.CRM_API_URL = "http://crm.invalid"
    settings.CRM_API_KEY = ""

    with pytest.raises(CRMPermanentError, match="CRM_API_KEY"):
        HTTPBackend()


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)

    assert parse_retry_after("120") == 120.0
    assert 55 <= parse_retry_after(in_a_minute) <= 60
    assert parse_retry_after("not a date") is None
    assert parse_retry_after(None) is None


def test_local_backend_logs_the_sync_without_the_address(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="crm.backends.local"):
        LocalBackend().upsert_contact(CONTACT, idempotency_key=KEY)

    assert "user 7" in caplog.text
    assert "ann@example.com" not in caplog.text


def test_locmem_backend_keeps_contacts_in_memory() -> None:
    locmem.CRMBackend().upsert_contact(CONTACT, idempotency_key=KEY)

    assert locmem.outbox == [locmem.SentContact(contact=CONTACT, idempotency_key=KEY)]


def test_backend_is_chosen_by_settings(settings) -> None:
    settings.CRM_BACKEND = "crm.backends.local.CRMBackend"

    assert isinstance(get_backend(), LocalBackend)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_never_followed_and_fails_for_good(crm, status: int) -> None:
    from crm.backends.base import CRMPermanentError
    from crm.backends.http import CRMBackend
    from devtools.fakes import CRMResponse

    crm.answer(CRMResponse(status=status, headers={"Location": "http://elsewhere.example/steal"}))

    with pytest.raises(CRMPermanentError, match="redirect") as raised:
        CRMBackend().upsert_contact(CONTACT, idempotency_key="k")

    assert raised.value.status == status
    assert [request.method for request in crm.requests] == ["PUT"]
    assert "ann@example.com" not in str(raised.value)


def test_a_huge_answer_is_read_only_up_to_the_cap(crm) -> None:
    from crm.backends.base import CRMPermanentError
    from crm.backends.http import RESPONSE_BODY_KEPT, CRMBackend
    from devtools.fakes import CRMResponse

    crm.answer(CRMResponse(status=400, body="x" * 5_000_000))

    with pytest.raises(CRMPermanentError) as raised:
        CRMBackend().upsert_contact(CONTACT, idempotency_key="k")

    assert len(raised.value.body) == RESPONSE_BODY_KEPT
