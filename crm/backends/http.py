"""The CRM over HTTP: PUT {CRM_API_URL}/contacts/{user_id}, as the CRM contract says."""

from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family, create_connection

from config.security import is_forbidden_crm_address
from crm.backends.base import (
    BaseCRMBackend,
    Contact,
    CRMPermanentError,
    CRMRateLimited,
    CRMTransientError,
    SyncResult,
)

SYNCED_STATUSES = frozenset({200, 201, 204})
ALREADY_SYNCED_STATUS = 409
# Worth another try besides 5xx: the CRM timed out reading the request, or asks us to slow down.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})
# The CRM's quota: the whole consumer slows down (events.api.RateLimited), not only this row.
RATE_LIMITED_STATUS = 429
RESPONSE_BODY_KEPT = 2000
DEADLINE_SLACK = 0.05


class CRMAddressRefused(Exception):
    """The CRM's host resolved only to addresses a contact must never be sent to."""


def resolve_host(host: str, port: int) -> list[str]:
    """Return the addresses host resolves to now, in the resolver's order (the seam tests replace)."""
    infos = socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, kw_only=True, slots=True)
class _Exchange:
    """What one request to the CRM may do: until when it may last, and whether local addresses are refused."""

    until: float
    refuse_local_addresses: bool

    def time_left(self) -> float:
        return self.until - time.monotonic()

    def ran_out(self) -> bool:
        # A socket timeout set to what was left ends within milliseconds of the deadline, either side.
        return self.time_left() <= DEADLINE_SLACK


# The request in flight in this thread (or task); its connection reads it at connect, send and receive.
_exchange: ContextVar[_Exchange | None] = ContextVar("crm_http_exchange", default=None)


class _DeadlineReader(io.RawIOBase):
    """The socket's reader, each receive given at most what is left until the deadline."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, *, exchange: _Exchange) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._exchange = exchange
        # The per-receive timeout urllib3 set for reading the answer.
        self._read_timeout = sock.gettimeout()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._exchange.time_left()
        if left <= 0:
            raise TimeoutError("the CRM's answer outlasted the total deadline")
        self._sock.settimeout(left if self._read_timeout is None else min(self._read_timeout, left))
        return self._raw.readinto(buffer)

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        # Closing the socket's own reader releases the socket as http.client expects.
        self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's response, its status line, headers and body read against the exchange's deadline."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        exchange = _exchange.get()
        if exchange is not None:
            # http.client reads headers line by line, each receive resetting the read timeout: a CRM
            # trickling a byte at a time would never time out without a deadline on every receive.
            self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, exchange=exchange))


class _CRMHTTPConnection(HTTPConnection):
    """Connects only to an address the guard permits, and sends and receives within the deadline."""

    response_class = _DeadlineResponse

    def _new_conn(self) -> socket.socket:
        exchange = _exchange.get()
        if exchange is None:
            return super()._new_conn()
        left = exchange.time_left()
        if left <= 0:
            raise ConnectTimeoutError(self, f"Connection to {self.host} not started: the total deadline passed")
        timeout = min(self.timeout, left) if isinstance(self.timeout, int | float) else self.timeout
        try:
            addresses = resolve_host(self._dns_host, self.port)
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error
        # Through a proxy the connection goes to the proxy the operator chose; the proxy resolves the CRM.
        if exchange.refuse_local_addresses and self.proxy is None:
            permitted = [
                address for address in addresses if not is_forbidden_crm_address(ipaddress.ip_address(address))
            ]
            if not permitted:
                raise CRMAddressRefused(
                    f"{self.host} resolves only to loopback, link-local or metadata addresses ({', '.join(addresses)})"
                )
            # The address judged is the address connected to: a literal, never resolved again.
            addresses = permitted
        error: OSError | None = None
        for address in addresses:
            try:
                sock = create_connection(
                    (address, self.port),
                    timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as failed:
                error = failed
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={timeout})"
            ) from error
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error

    def send(self, data: Any) -> None:
        exchange = _exchange.get()
        if exchange is not None and self.sock is not None:
            left = exchange.time_left()
            if left <= 0:
                raise TimeoutError("the CRM request outlasted the total deadline")
            current = self.sock.gettimeout()
            self.sock.settimeout(left if current is None else min(current, left))
        super().send(data)


class _CRMHTTPSConnection(_CRMHTTPConnection, HTTPSConnection):
    """The same over TLS: the certificate is checked against the name, whichever address was connected to."""


class _CRMHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _CRMHTTPConnection


class _CRMHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _CRMHTTPSConnection


_CRM_POOL_CLASSES = {"http": _CRMHTTPConnectionPool, "https": _CRMHTTPSConnectionPool}


class _CRMAdapter(HTTPAdapter):
    """requests' adapter over the CRM's connections, directly or through a proxy."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _CRM_POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _CRM_POOL_CLASSES
        return manager


def crm_session() -> requests.Session:
    """Return a requests session whose connections the CRM's guard and deadline govern."""
    session = requests.Session()
    session.mount("http://", _CRMAdapter())
    session.mount("https://", _CRMAdapter())
    return session


# The HTTP session (kept-alive connections) a batch of syncs shares (see http_session).
_session: ContextVar[requests.Session | None] = ContextVar("crm_http_session", default=None)


@contextmanager
def http_session() -> Iterator[None]:
    """Send the block's requests over one kept-alive HTTP session."""
    with crm_session() as session:
        token = _session.set(session)
        try:
            yield
        finally:
            _session.reset(token)


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds a Retry-After header asks for (delay-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class CRMBackend(BaseCRMBackend):
    """Speaks the CRM HTTP contract, with connect and read timeouts and a total deadline always set."""

    def __init__(self) -> None:
        if not settings.CRM_API_URL or not settings.CRM_API_KEY:
            raise CRMPermanentError("CRM_API_URL and CRM_API_KEY must both be set for the HTTP CRM backend")
        self.base_url = settings.CRM_API_URL.rstrip("/")
        self.api_key = settings.CRM_API_KEY
        # A total deadline besides the per-read one: a CRM that trickles its answer a byte at a
        # time never lets a read time out. The connection gives the connect, the send and every
        # receive (status line, headers and body alike) at most what is left of it.
        self.deadline = settings.CRM_TOTAL_TIMEOUT
        self.timeout = urllib3.Timeout(
            connect=settings.CRM_CONNECT_TIMEOUT, read=settings.CRM_READ_TIMEOUT, total=self.deadline
        )
        # Judged when connecting, not only when the settings load: DNS may change (or be made to).
        self.refuse_local_addresses = settings.CRM_REFUSE_LOCAL_ADDRESSES

    @staticmethod
    def _read_body(response: requests.Response) -> str:
        """Read at most RESPONSE_BODY_KEPT bytes of the answer."""
        chunks: list[bytes] = []
        kept = 0
        try:
            while kept < RESPONSE_BODY_KEPT:
                # read1: what one receive brings (read would wait for all it asks for).
                chunk = response.raw.read1(min(512, RESPONSE_BODY_KEPT - kept), decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
                kept += len(chunk)
        finally:
            response.close()
        return b"".join(chunks).decode("utf-8", "replace")

    def upsert_contact(self, contact: Contact, *, idempotency_key: str) -> SyncResult:
        """PUT the contact; map the answer onto synced, transient or permanent."""
        exchange = _Exchange(until=time.monotonic() + self.deadline, refuse_local_addresses=self.refuse_local_addresses)
        shared = _session.get()
        token = _exchange.set(exchange)
        try:
            with nullcontext(shared) if shared is not None else crm_session() as session:
                response = session.put(
                    f"{self.base_url}/contacts/{contact.user_id}",
                    json=contact.to_payload(),
                    headers={
                        "Authorization": f"Bearer {self.api_key}",
                        "Idempotency-Key": idempotency_key,
                        "Content-Type": "application/json",
                    },
                    timeout=self.timeout,
                    # A redirect would send the contact to another host (307) or turn the PUT into a GET (302).
                    allow_redirects=False,
                    # Read at most RESPONSE_BODY_KEPT bytes of the answer, however large it is.
                    stream=True,
                )
                body = self._read_body(response)
        except CRMAddressRefused as error:
            # Sending it elsewhere later would need the DNS to change: an operator replays it then.
            raise CRMPermanentError(f"CRM address refused: {error}") from error
        except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
            if exchange.ran_out():
                # Whatever layer noticed it, the deadline ended the request: say so.
                raise CRMTransientError(
                    f"CRM timed out: the request outlasted its total deadline of {self.deadline:g} s"
                    f" ({type(error).__name__})"
                ) from error
            if isinstance(error, requests.Timeout):
                raise CRMTransientError(f"CRM timed out: {type(error).__name__}") from error
            if isinstance(error, requests.ConnectionError):
                raise CRMTransientError(f"CRM unreachable: {type(error).__name__}") from error
            # A broken or undecodable answer: the same request may well succeed next time.
            raise CRMTransientError(f"CRM answer unreadable: {type(error).__name__}") from error
        finally:
            _exchange.reset(token)
        status = response.status_code
        if status in SYNCED_STATUSES:
            return SyncResult(status_code=status)
        if status == ALREADY_SYNCED_STATUS:
            return SyncResult(status_code=status, already_synced=True)
        if 300 <= status < 400:
            raise CRMPermanentError(f"CRM answered HTTP {status} (a redirect, not followed)", status=status, body=body)
        if status == RATE_LIMITED_STATUS:
            raise CRMRateLimited(
                f"CRM answered HTTP {status}",
                status=status,
                body=body,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status in RETRYABLE_CLIENT_STATUSES or status >= 500:
            raise CRMTransientError(
                f"CRM answered HTTP {status}",
                status=status,
                body=body,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        raise CRMPermanentError(f"CRM rejected the contact: HTTP {status}", status=status, body=body)
