from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from crm.backends import get_backend, locmem
from crm.backends.base import Contact, CRMPermanentError, CRMTransientError
from crm.backends.http import DEADLINE_SLACK, parse_retry_after
from crm.backends.http import CRMBackend as HTTPBackend
from crm.backends.local import CRMBackend as LocalBackend
from devtools.fakes import CRMResponse, FakeCRM, running_crm, trickling_crm
from devtools.redis_server import free_port

CONTACT = Contact(user_id=7, email="ann@example.com", name="Ann", signed_up_at=datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
KEY = "7d7a4b4e-8a55-4f55-9a4b-3f1b7c1f6d11"
BASE_DIR = Path(__file__).resolve().parent.parent.parent


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


def test_http_backend_gives_up_on_a_crm_that_trickles_its_status_line_and_headers(settings) -> None:
    # given: a byte every 0.2 s, well within the read timeout, from the status line on, headers never ending
    settings.CRM_READ_TIMEOUT = 0.5
    settings.CRM_TOTAL_TIMEOUT = 1.5
    with trickling_crm(trickled=b"HTTP/1.1 200 OK\r\nX-Trickle: ") as url:
        settings.CRM_API_URL = url
        backend = HTTPBackend()
        started = time.monotonic()

        # when / then: a transient failure naming the deadline, at the deadline (not before, nor 10 s later)
        with pytest.raises(CRMTransientError, match="total deadline of 1.5 s"):
            backend.upsert_contact(CONTACT, idempotency_key=KEY)
        elapsed = time.monotonic() - started
    assert 1.5 - DEADLINE_SLACK <= elapsed < 1.5 + 3


def this_machines_address() -> str:
    """An IPv4 address of this machine other than loopback (one the CRM guard permits), or skip."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("203.0.113.1", 9))  # a UDP "connect" sends nothing: it only picks the route
        except OSError:
            pytest.skip("this machine has no route off loopback")
        address = probe.getsockname()[0]
    if ipaddress.ip_address(address).is_loopback:
        pytest.skip("this machine has no address but loopback")
    return address


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "2130706433", "[::ffff:127.0.0.1]"])
def test_with_the_guard_on_a_crm_resolving_to_this_machine_is_refused_at_connect(crm, settings, host: str) -> None:
    # given: the production guard on, and a real CRM listening on loopback
    settings.CRM_REFUSE_LOCAL_ADDRESSES = True
    settings.CRM_API_URL = f"http://{host}:{urlsplit(crm.url).port}"

    # when / then: a permanent failure with the reason, and not one byte sent to the CRM
    with pytest.raises(CRMPermanentError, match="CRM address refused: .* resolves only to loopback") as refused:
        HTTPBackend().upsert_contact(CONTACT, idempotency_key=KEY)
    assert "ann@example.com" not in str(refused.value)
    assert crm.requests == []


def test_with_the_guard_off_the_tests_crm_on_loopback_is_reached(crm, settings) -> None:
    settings.CRM_REFUSE_LOCAL_ADDRESSES = False
    settings.CRM_API_URL = f"http://localhost:{urlsplit(crm.url).port}"

    HTTPBackend().upsert_contact(CONTACT, idempotency_key=KEY)

    assert len(crm.requests) == 1


def test_with_the_guard_on_the_address_is_judged_at_each_connect_as_the_name_resolves_then(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a CRM reachable on loopback and on this machine's own address, the guard on
    address = this_machines_address()
    answers = {"crm.example.com": [address]}
    monkeypatch.setattr("crm.backends.http.resolve_host", lambda host, port: answers[host])
    settings.CRM_REFUSE_LOCAL_ADDRESSES = True
    with running_crm(host="0.0.0.0") as crm:
        settings.CRM_API_URL = f"http://crm.example.com:{urlsplit(crm.url).port}"
        HTTPBackend().upsert_contact(CONTACT, idempotency_key=KEY)

        # when: the name now resolves to loopback first (DNS rebinding), then to loopback only
        answers["crm.example.com"] = ["127.0.0.1", address]
        HTTPBackend().upsert_contact(CONTACT, idempotency_key=KEY)
        answers["crm.example.com"] = ["::ffff:169.254.169.254", "127.0.0.1"]
        with pytest.raises(
            CRMPermanentError, match=r"crm.example.com resolves only to .*\(::ffff:169.254.169.254, 127"
        ):
            HTTPBackend().upsert_contact(CONTACT, idempotency_key=KEY)

    # then: the permitted address was connected to each time it was offered, loopback never
    assert [request.client_host for request in crm.requests] == [address, address]


@pytest.fixture
def crm_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context whose self-signed certificate names crm.example.com, the client trusting it."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=crm.example.com",
         "-addext", "subjectAltName=DNS:crm.example.com", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@pytest.mark.parametrize(
    "trickled, outcome",
    [(b"", "synced"), (b"HTTP/1.1 200 OK\r\nX-Trickle: ", "total deadline of 1.5 s")],
)
def test_over_tls_the_guard_keeps_the_name_for_the_certificate_and_the_deadline_holds(
    crm_tls: ssl.SSLContext, settings, monkeypatch: pytest.MonkeyPatch, trickled: bytes, outcome: str
) -> None:
    # given: the guard on, crm.example.com resolving to this machine, a CRM answering at once or trickling
    address = this_machines_address()
    monkeypatch.setattr("crm.backends.http.resolve_host", lambda host, port: [address])
    settings.CRM_REFUSE_LOCAL_ADDRESSES = True
    settings.CRM_READ_TIMEOUT = 0.5
    settings.CRM_TOTAL_TIMEOUT = 1.5
    head = b"" if trickled else b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    with trickling_crm(head=head, trickled=trickled, host=address, tls=crm_tls) as url:
        settings.CRM_API_URL = f"https://crm.example.com:{urlsplit(url).port}"
        backend = HTTPBackend()
        started = time.monotonic()

        # when
        try:
            result = f"synced: {backend.upsert_contact(CONTACT, idempotency_key=KEY).status_code}"
        except CRMTransientError as error:
            result = str(error)
        elapsed = time.monotonic() - started

    # then: the certificate was verified for the name (connected to by address), and a trickle ends at the deadline
    assert outcome in result
    assert elapsed < 1.5 + 3


def test_production_turns_the_connect_guard_on() -> None:
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "x7#Lq9!vT2@pZ4$wR8^mN6&kB3*hJ5(yF1)cD0-eG_sA+uQ=oI",
        "DJANGO_ALLOWED_HOSTS": "relay.example.com",
        "CRM_API_URL": "https://crm.example.com/api",
        "THROTTLE_TRUSTED_PROXIES": "0",
        "CRM_API_KEY": "crm-secret",
        "REDIS_URL": "rediss://:redis-secret@redis.example.com:6380/0",
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_READ_DOT_ENV": "false",
    }
    command = "from django.conf import settings; print(settings.CRM_REFUSE_LOCAL_ADDRESSES)"

    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", command],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.stdout.strip() == "True", result.stdout + result.stderr


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
