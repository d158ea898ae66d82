"""The ASGI web process's request bodies: capped and read against a deadline before Django sees them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from config.request_body import RequestBodyBuffer

MAX_BYTES = 100


class RecordingApp:
    """An ASGI app that reads its whole body and answers 200, keeping what it read."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def serve(
    messages: list[dict[str, Any]], *, headers: list[tuple[bytes, bytes]], delay: float = 0.0, timeout: float = 5.0
) -> tuple[RecordingApp, list[dict[str, Any]], list[dict[str, Any]]]:
    """Run one request through RequestBodyBuffer; return the app, what was sent and what was left unread."""
    app = RecordingApp()
    pending = list(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not pending:
            await asyncio.sleep(3600)  # nothing more comes: a client that stopped sending
        await asyncio.sleep(delay)
        return pending.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/signup/", "headers": headers}
    buffer = RequestBodyBuffer(app, max_bytes=MAX_BYTES, timeout=timeout, concurrency=4)
    asyncio.run(asyncio.wait_for(buffer(scope, receive, send), timeout=10))
    return app, sent, pending


def status(sent: list[dict[str, Any]]) -> int:
    return sent[0]["status"]


def test_a_body_in_pieces_reaches_the_app_whole() -> None:
    # given
    pieces = [{"type": "http.request", "body": b"a" * 40, "more_body": True}, {"type": "http.request", "body": b"b"}]

    # when
    app, sent, _ = serve(pieces, headers=[(b"content-length", b"41")])

    # then
    assert app.bodies == [b"a" * 40 + b"b"]
    assert status(sent) == 200


def test_a_body_declared_over_the_cap_is_refused_before_a_byte_is_read() -> None:
    # given
    body = [{"type": "http.request", "body": b"a" * 10}]

    # when
    app, sent, unread = serve(body, headers=[(b"content-length", str(MAX_BYTES + 1).encode())])

    # then
    assert status(sent) == 413
    assert (b"connection", b"close") in sent[0]["headers"]
    assert unread == body
    assert app.bodies == []


def test_a_chunked_body_growing_over_the_cap_is_refused() -> None:
    # given: no Content-Length, pieces that add up to more than the cap
    pieces = [{"type": "http.request", "body": b"a" * 60, "more_body": True}] * 3

    # when
    app, sent, unread = serve(pieces, headers=[(b"transfer-encoding", b"chunked")])

    # then
    assert status(sent) == 413
    assert len(unread) == 1
    assert app.bodies == []


def test_a_body_that_has_not_arrived_by_the_deadline_is_answered_408() -> None:
    # given: a byte every 0.1 s, a deadline of 0.3 s
    pieces = [{"type": "http.request", "body": b"a", "more_body": True}] * 50

    # when
    app, sent, _ = serve(pieces, headers=[(b"content-length", b"50")], delay=0.1, timeout=0.3)

    # then
    assert status(sent) == 408
    assert app.bodies == []


@pytest.mark.parametrize("length", [b"ten", b"-1", b"1e3"])
def test_a_content_length_that_is_not_a_number_is_answered_400(length: bytes) -> None:
    app, sent, _ = serve([{"type": "http.request", "body": b""}], headers=[(b"content-length", length)])

    assert status(sent) == 400
    assert app.bodies == []


def test_a_client_gone_before_its_body_is_in_is_not_answered() -> None:
    app, sent, _ = serve(
        [{"type": "http.request", "body": b"a", "more_body": True}, {"type": "http.disconnect"}],
        headers=[(b"content-length", b"50")],
    )

    assert sent == []
    assert app.bodies == []


class SlowApp:
    """An ASGI app whose view takes `think` seconds, then whose response body waits for `reader`."""

    def __init__(self, *, think: float, reader: asyncio.Event | None = None) -> None:
        self.think = think
        self.reader = reader
        self.running = 0
        self.most_running = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        await asyncio.sleep(self.think)
        self.running -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if self.reader is not None:
            await self.reader.wait()  # a client that does not read its answer
        await send({"type": "http.response.body", "body": b"ok"})


def run_requests(buffer: RequestBodyBuffer, count: int, *, within: float) -> list[int]:
    """Run count requests at once through buffer; return their statuses (finished within `within` s)."""

    async def one() -> int:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await buffer({"type": "http", "path": "/", "headers": []}, receive, send)
        return sent[0]["status"]

    async def every() -> list[int]:
        return await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), timeout=within)

    return asyncio.run(every())


def test_no_more_requests_than_the_concurrency_run_in_the_app_at_once() -> None:
    # given
    app = SlowApp(think=0.05)
    buffer = RequestBodyBuffer(app, max_bytes=MAX_BYTES, timeout=5, concurrency=2)

    # when
    statuses = run_requests(buffer, 10, within=5)

    # then: every one was answered, two at a time
    assert statuses == [200] * 10
    assert app.most_running == 2


def test_a_client_reading_its_answer_slowly_holds_no_slot() -> None:
    # given: one slot, and answers whose bodies wait for a reader that comes only once every view ran
    reader = asyncio.Event()
    app = SlowApp(think=0.01, reader=reader)
    buffer = RequestBodyBuffer(app, max_bytes=MAX_BYTES, timeout=5, concurrency=1)
    answered: list[int] = []

    async def request() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answered.append(message["status"])

        await buffer({"type": "http", "path": "/", "headers": []}, receive, send)

    async def scenario() -> None:
        requests = asyncio.gather(*(request() for _ in range(3)))
        try:
            async with asyncio.timeout(5):
                while len(answered) < 3:
                    await asyncio.sleep(0.01)
        finally:
            reader.set()
            await requests

    # when
    asyncio.run(scenario())

    # then: all three views answered while the first answers' bodies were still unread
    assert answered == [200, 200, 200]
