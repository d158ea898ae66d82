"""Real local servers for tests and benchmarks: a scriptable CRM over HTTP and an SMTP sink."""

from __future__ import annotations

import asyncio
import json
import logging
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


@dataclass(frozen=True)
class CRMRequest:
    """One request the fake CRM received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    client_port: int = 0
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

    def __init__(self) -> None:
        self.requests: list[CRMRequest] = []
        self.script: deque[CRMResponse] = deque()
        self.default = CRMResponse()
        # Answer each path's first request with this, before the script (None: no such rule).
        self.first_per_path: CRMResponse | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def answer(self, *responses: CRMResponse) -> None:
        """Queue responses for the next requests, in order."""
        self.script.extend(responses)

    def _next_response(self, request: CRMRequest) -> CRMResponse:
        with self._lock:
            first = self.first_per_path is not None and all(seen.path != request.path for seen in self.requests)
            self.requests.append(request)
            if first:
                return self.first_per_path
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
def running_crm() -> Iterator[FakeCRM]:
    """A FakeCRM for the duration of the block."""
    crm = FakeCRM().start()
    try:
        yield crm
    finally:
        crm.stop()


class SMTPSink:
    """A real SMTP server (aiosmtpd) that keeps every message it accepts, optionally slowly.

    It can refuse some recipients for good (550), defer every message (451), or be stopped and
    started again on the same port (connections refused meanwhile).
    """

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.refuse: set[str] = set()
        self.defer = False
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
        if self.delay:
            await asyncio.sleep(self.delay)
        message = message_from_bytes(envelope.original_content)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted for delivery"

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
