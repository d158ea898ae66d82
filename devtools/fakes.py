"""Real local servers for tests and benchmarks: a scriptable CRM over HTTP and an SMTP sink."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from devtools.redis_server import free_port

# aiosmtpd logs every SMTP command at INFO: noise in a failing test's output.
logging.getLogger("mail.log").setLevel(logging.WARNING)


class Quota:
    """A provider's quota as SaaS APIs keep it: a bucket of `count` requests refilled at count per `per` seconds."""

    def __init__(self, *, count: int, per: float) -> None:
        self.count = count
        self.per = per
        self._tokens = float(count)
        self._at: float | None = None
        self._lock = threading.Lock()

    def take(self, now: float) -> bool:
        """Spend one request of the quota at monotonic time now; False when none is left."""
        with self._lock:
            if self._at is not None:
                self._tokens = min(self.count, self._tokens + (now - self._at) * self.count / self.per)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


@dataclass(frozen=True)
class CRMRequest:
    """One request the fake CRM received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    client_port: int = 0
    client_host: str = ""
    received_at: float = field(default_factory=time.monotonic)


@dataclass
class CRMResponse:
    """What the fake CRM answers: a status, headers, a body, after an optional delay."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = '{"ok": true}'
    delay: float = 0.0


class FakeCRM:
    """A CRM on a real socket: records each request, answers from a script, then with `default`."""

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self.requests: list[CRMRequest] = []
        self.script: deque[CRMResponse] = deque()
        self.default = CRMResponse()
        # Answer each path's first request with this, before the script (None: no such rule).
        self.first_per_path: CRMResponse | None = None
        self.refused: list[CRMRequest] = []
        # While down, every request is answered 503 (a dead endpoint that still accepts connections).
        self.down = False
        self._quota = Quota(count=0, per=1.0)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, free_port()), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_port}"

    @property
    def quota(self) -> tuple[int, float] | None:
        """The provider's quota: (count, per seconds), None for none; beyond it 429 with Retry-After: 1."""
        return (self._quota.count, self._quota.per) if self._quota.count else None

    @quota.setter
    def quota(self, value: tuple[int, float] | None) -> None:
        self._quota = Quota(count=value[0], per=value[1]) if value else Quota(count=0, per=1.0)

    def answer(self, *responses: CRMResponse) -> None:
        """Queue responses for the next requests, in order."""
        self.script.extend(responses)

    def _next_response(self, request: CRMRequest) -> CRMResponse:
        with self._lock:
            first = self.first_per_path is not None and all(seen.path != request.path for seen in self.requests)
            self.requests.append(request)
            if first:
                return self.first_per_path
            if self.down:
                return CRMResponse(status=503, body='{"error": "unavailable"}')
            if self.quota is not None and not self._quota.take(request.received_at):
                self.refused.append(request)
                return CRMResponse(status=429, headers={"Retry-After": "1"}, body='{"error": "rate limited"}')
            return self.script.popleft() if self.script else self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        crm = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as real CRMs do: a client may send many requests over one connection.
            protocol_version = "HTTP/1.1"

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = CRMRequest(
                    method="PUT",
                    path=self.path,
                    headers={key.lower(): value for key, value in self.headers.items()},
                    body=json.loads(raw) if raw else {},
                    client_port=self.client_address[1],
                    client_host=self.client_address[0],
                )
                response = crm._next_response(request)
                if response.delay:
                    time.sleep(response.delay)
                payload = response.body.encode()
                try:
                    self.send_response(response.status)
                    for key, value in response.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # The client gave up (a timeout test): nothing to answer.

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> FakeCRM:
        """Serve in a background thread."""
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def running_crm(*, host: str = "127.0.0.1") -> Iterator[FakeCRM]:
    """A FakeCRM listening on host (an IPv4 address) for the duration of the block."""
    crm = FakeCRM(host=host).start()
    try:
        yield crm
    finally:
        crm.stop()


@contextmanager
def trickling_crm(
    *, head: bytes = b"", trickled: bytes = b"", host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> Iterator[str]:
    """A CRM on a raw socket answering one request: head, then trickled and "x"s a byte every 0.2 s (10 s at most)."""
    server = socket.create_server((host, 0))
    stop = threading.Event()

    def serve() -> None:
        try:
            connection, _ = server.accept()
            if tls is not None:
                connection = tls.wrap_socket(connection, server_side=True)
        except OSError:
            return  # closed before any client came, or the client refused the certificate
        with connection:
            connection.recv(65536)
            try:
                connection.sendall(head)
                drops = itertools.chain((bytes([byte]) for byte in trickled), itertools.repeat(b"x", 50))
                for drop in drops:
                    if stop.wait(0.2):
                        break
                    connection.sendall(drop)
            except OSError:
                pass  # the client gave up: what the test wants

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"{'http' if tls is None else 'https'}://{host}:{server.getsockname()[1]}"
    finally:
        stop.set()
        server.close()


class SMTPSink:
    """A real SMTP server (aiosmtpd) that keeps every message it accepts, optionally slowly.

    It can refuse some recipients for good (550), defer every message (451), or be stopped and
    started again on the same port (connections refused meanwhile).
    """

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.refuse: set[str] = set()
        self.defer = False
        self.rate_refused = 0
        self._rate = Quota(count=0, per=1.0)
        self.messages: list[Message] = []
        self.data_started = 0
        self.greetings = 0  # one per SMTP session (EHLO)
        self.port = free_port()
        self._controller: Controller | None = None

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.greetings += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_started += 1
        if self.defer:
            return "451 4.3.0 try again later"
        if self.rate_limit is not None and not self._rate.take(time.monotonic()):
            self.rate_refused += 1
            return "451 4.7.1 too many messages, slow down"
        if self.delay:
            await asyncio.sleep(self.delay)
        message = message_from_bytes(envelope.original_content)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    @property
    def rate_limit(self) -> tuple[int, float] | None:
        """A sending-rate limit: (count, per seconds); beyond it "451 4.7.1 too many messages, slow down"."""
        return (self._rate.count, self._rate.per) if self._rate.count else None

    @rate_limit.setter
    def rate_limit(self, value: tuple[int, float] | None) -> None:
        self._rate = Quota(count=value[0], per=value[1]) if value else Quota(count=0, per=1.0)

    @property
    def url(self) -> str:
        """The EMAIL_URL that sends here."""
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SMTPSink:
        """Accept connections in a background thread."""
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop accepting connections."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@contextmanager
def running_smtp() -> Iterator[SMTPSink]:
    """An SMTPSink for the duration of the block."""
    sink = SMTPSink().start()
    try:
        yield sink
    finally:
        sink.stop()
