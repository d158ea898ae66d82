"""The ASGI web process reads each request's body before Django sees it: capped, and against a deadline.

Django's ASGI handler reads the whole body, to a temporary file, before any middleware runs, so
`config.middleware.request_body_limit` alone would answer 413 only after a client has sent all of
its bytes. Here a body declared larger than REQUEST_BODY_MAX_BYTES is refused before a byte of it
is read, a body that grows past it (chunked) as soon as it does, and a body that has not arrived
within REQUEST_BODY_TIMEOUT seconds (a client trickling it) is answered 408. Only then does Django,
and the thread its synchronous views run in, take the request: at most REQUEST_CONCURRENCY at once
in a process, the others wait their turn in the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# What any client can cause at will is logged on the loggers that never mail (config/settings/base.py).
too_large_logger = logging.getLogger("django.security.RequestDataTooBig")
logger = logging.getLogger(__name__)


class RequestBodyBuffer:
    """Hand Django a request once its body is in (max_bytes, within timeout s), `concurrency` requests at a time."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout: float, concurrency: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        # Django runs each request in a thread of its own, with its own database connection: without
        # a bound, a burst of requests would take as many threads and connections as it has requests.
        self.slots = asyncio.Semaphore(concurrency)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is None:
            await _answer(send, 400, b"A request's Content-Length must be a number.")
            return
        if declared > self.max_bytes:
            too_large_logger.warning("Request body of %d bytes refused: %s", declared, scope.get("path", ""))
            await _answer(send, 413, b"That request is too large.")
            return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # The client is gone: nobody to answer.
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_bytes:
                        too_large_logger.warning("Request body over %d bytes refused: %s", size, scope.get("path", ""))
                        await _answer(send, 413, b"That request is too large.")
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            logger.warning("Request body not in after %g s; answered 408: %s", self.timeout, scope.get("path", ""))
            await _answer(send, 408, b"The request's body took too long to arrive.")
            return

        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            # Django keeps listening for the client to go away while the view runs.
            return await receive()

        await self.slots.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self.slots.release()

        async def send_then_release(message: Message) -> None:
            if message["type"] == "http.response.start":
                # The view has answered: a client reading the body slowly holds no slot.
                release()
            await send(message)

        try:
            await self.app(scope, replay, send_then_release)
        finally:
            release()


def _content_length(scope: Scope) -> int | None:
    """Return the declared Content-Length (0 when there is none), or None when it is not a number."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            return int(value) if value.isdigit() else None
    return 0


async def _answer(send: Send, status: int, text: bytes) -> None:
    """Answer status with a plain-text line and close the connection: the unread body must not be read as a request."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(text)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text})
