"""Project-wide middleware."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.log import log_response

from events import logcontext

logger = logging.getLogger(__name__)

# Seconds a client is asked to wait after a 503 for an unreachable database.
DATABASE_RETRY_AFTER = 30


def request_body_limit(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Answer 413 to a request whose body is larger than REQUEST_BODY_MAX_BYTES, file parts included.

    Django's own limit (DATA_UPLOAD_MAX_MEMORY_SIZE) leaves file parts out; this one is on the
    declared length, before anything is read.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return HttpResponse("A request's Content-Length must be a number.", status=400, content_type="text/plain")
        if length > settings.REQUEST_BODY_MAX_BYTES:
            return HttpResponse("That request is too large.", status=413, content_type="text/plain")
        return get_response(request)

    return middleware


def request_id(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Tag every log line of a request with its id (a safe X-Request-ID it came with, else a new one); echo it."""

    def middleware(request: HttpRequest) -> HttpResponse:
        identifier = logcontext.new_request_id(request.headers.get("X-Request-ID"))
        with logcontext.request_scope(identifier):
            response = get_response(request)
            if response.status_code >= 400:
                # Django logs a 4xx/5xx response after the last middleware has returned, outside this
                # scope: log it here, with the ids (Django then skips its own line).
                log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        response["X-Request-ID"] = identifier
        return response

    return middleware


# SQLSTATEs of a PostgreSQL that cannot be reached or is going away: connection exceptions (class
# 08) and an administrator's shutdown (57P01-57P03). A deadlock or a timeout is a bug to see (500).
UNREACHABLE_SQLSTATE_PREFIXES = ("08", "57P01", "57P02", "57P03")
# SQLite's errors of a database file that cannot be used right now, rather than of a wrong query.
UNAVAILABLE_SQLITE_MESSAGES = ("database is locked", "unable to open database file", "disk i/o error")


def database_unreachable(exception: BaseException) -> bool:
    """Return whether exception says the database cannot be reached now (not that a query is wrong)."""
    if isinstance(exception, InterfaceError):
        return True  # The connection is closed or broken.
    if not isinstance(exception, OperationalError):
        return False
    cause = exception.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(UNREACHABLE_SQLSTATE_PREFIXES)
    if type(cause).__module__.startswith("psycopg"):
        return True  # psycopg gives no SQLSTATE when it cannot connect at all.
    return str(cause or exception).lower().startswith(UNAVAILABLE_SQLITE_MESSAGES)


class DatabaseUnavailableMiddleware:
    """Answer 503 with a page asking to come back when a view finds the database unreachable."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """Turn a database connection error into a 503; leave every other exception to Django."""
        if settings.DEBUG or not database_unreachable(exception):
            # With DEBUG, Django's technical page says more (e.g. "no such table" before a migrate).
            return None
        view = request.resolver_match.view_name if request.resolver_match else "unresolved"
        # The class only: a driver's message can name the host, the user or the whole DSN.
        logger.error(
            "Database unavailable (%s.%s) while answering %s; answered 503.",
            type(exception).__module__,
            type(exception).__qualname__,
            view,
        )
        # No request: the context processors would reach for the session and the user, in the database.
        response = HttpResponse(render_to_string("503.html"), status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return response
