"""The correlation ids on every log line: the request's id and the ids of the events it is about.

A grep for an event id finds the request that published it (its `Published` line carries the
request id) and every line of every delivery of it, on any worker.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from uuid import UUID

request_id: ContextVar[str | None] = ContextVar("log_request_id", default=None)
event_id: ContextVar[str | None] = ContextVar("log_event_id", default=None)

# A caller's X-Request-ID is kept only if it cannot forge or break a log line.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
EMAIL_ADDRESS = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+")


# Event ids are logged as dashed UUIDs: one in a caller's request id would make its lines pass
# for that event's in a grep.
DASHED_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def new_request_id(candidate: str | None = None) -> str:
    """Return candidate when it is a short safe token (a proxy's id, kept across hops), else a fresh id.

    A UUID in it is kept as its 32 hex digits (Heroku's router sends one): still the caller's id,
    but never the text of an event id.
    """
    if candidate and SAFE_REQUEST_ID.fullmatch(candidate):
        return DASHED_UUID.sub(lambda found: found.group(0).replace("-", "").lower(), candidate)
    return uuid.uuid4().hex


@contextmanager
def request_scope(request: str) -> Iterator[None]:
    """Tag the block's log lines with the request id; forget it and the events published inside on exit."""
    request_token = request_id.set(request)
    event_token = event_id.set(None)
    try:
        yield
    finally:
        event_id.reset(event_token)
        request_id.reset(request_token)


def event_published(event: UUID) -> None:
    """Tag the rest of the current request's (or task's) log lines with event as well."""
    # Several events in one request: all their ids, comma-joined, so a grep for any of them finds the
    # lines logged after it (the latest alone would hide the earlier ones).
    ids = [known for known in (event_id.get() or "").split(",") if known]
    if str(event) not in ids:
        event_id.set(",".join([*ids, str(event)]))


@contextmanager
def event_scope(*events: UUID) -> Iterator[None]:
    """Tag the block's log lines with these events alone (one delivery, or one batch handled at once)."""
    token = event_id.set(",".join(str(event) for event in events) or None)
    try:
        yield
    finally:
        event_id.reset(token)


class ContextFilter(logging.Filter):
    """Copy the current request id and event ids onto every record ("-" for none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        record.event_id = event_id.get() or "-"
        return True


class JSONFormatter(logging.Formatter):
    """Format a record as one JSON object on one line, with its correlation ids."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "event_id": getattr(record, "event_id", "-"),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        # Production lines are shipped and kept: an address that slipped into an error's text (a
        # library's message, a traceback's chained cause) is masked here as a last resort.
        for key in ("message", "exc_info", "stack_info"):
            if key in entry:
                entry[key] = EMAIL_ADDRESS.sub("<email>", entry[key])
        return json.dumps(entry, default=str)
