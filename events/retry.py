"""Retry schedules and the classification of errors into 'try again' and 'give up now'."""

from __future__ import annotations

import random
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from celery.exceptions import SoftTimeLimitExceeded
from django.db import DatabaseError, InterfaceError, OperationalError, connection

from events.conf import events_settings


class PermanentError(Exception):
    """Retrying cannot help (the receiving side refused the data): a dead letter at once."""


class TransientError(Exception):
    """Worth another try, never sooner than retry_after seconds when the other side says so."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(TransientError):
    """The other side refused for now because of its quota (HTTP 429, an SMTP "too many"): the whole consumer slows.

    Not the delivery's fault and not a sign the endpoint is down: its consumer waits retry_after
    seconds (or one period of its rate) before any drain of it sends again, and no attempt is
    spent on it; the circuit breaker does not count it.
    """


# The database, the mail server or the network blinked: the same attempt may succeed later.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    OperationalError,
    InterfaceError,
    smtplib.SMTPException,
    # ConnectionError, TimeoutError, and what they are not: DNS failures (socket.gaierror), TLS errors.
    OSError,
    SoftTimeLimitExceeded,
)

# What a database outage raises in a worker: the drain is retried, its work never dropped.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)

# SQLSTATEs of a database that will take the work again soon, whatever class the driver gives
# them: read-only (a standby, a failover under way, default_transaction_read_only), shutting down
# or restarting, in recovery, and the connection exceptions (class 08).
UNAVAILABLE_SQLSTATES = frozenset({"25006", "57P01", "57P02", "57P03"})


class DatabaseUnavailable(OperationalError):
    """The database cannot take this work now (down, read-only, in recovery): try again later."""


def is_database_unavailable(error: BaseException) -> bool:
    """Return whether error says the database is down, read-only or in recovery: worth a retry, on a new connection."""
    if isinstance(error, DATABASE_ERRORS):
        return True
    if not isinstance(error, DatabaseError):
        return False
    # Django wraps the driver's error; psycopg names its SQLSTATE `sqlstate`, psycopg2 `pgcode`.
    cause = error.__cause__
    sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None) or ""
    return sqlstate in UNAVAILABLE_SQLSTATES or sqlstate.startswith("08")


@contextmanager
def database_unavailable_raised() -> Iterator[None]:
    """Raise an unavailable database's error as DatabaseUnavailable, once the connection that saw it is closed."""
    try:
        yield
    except DatabaseError as error:
        if not is_database_unavailable(error):
            raise
        # A connection opened while the database was read-only stays so for its whole life, and
        # Django's health check (a SELECT) would keep it: the next try opens a new one. (Inside a
        # caller's transaction, eager in tests, closing would break the caller's: leave it.)
        if not connection.in_atomic_block:
            connection.close()
        if isinstance(error, DATABASE_ERRORS):
            raise
        sqlstate = getattr(error.__cause__, "sqlstate", None) or getattr(error.__cause__, "pgcode", None)
        raise DatabaseUnavailable(f"database unavailable ({type(error).__name__}, SQLSTATE {sqlstate})") from error


def is_transient(error: BaseException) -> bool:
    """Return whether error is worth another attempt; anything else (a bug, a refusal) is permanent."""
    if isinstance(error, PermanentError):
        return False
    return isinstance(error, TRANSIENT_ERRORS) or is_database_unavailable(error)


@dataclass(frozen=True, kw_only=True)
class RetrySchedule:
    """Exponential back-off with jitter, capped, over about a day by default (as Stripe and Sidekiq do).

    Unset fields come from settings (EVENTS_RETRY_FIRST, EVENTS_RETRY_CAP, EVENTS_RETRY_MAX_ATTEMPTS),
    read when used, so an operator (or a test) can scale every schedule at once.
    """

    first: float | None = None
    factor: float = 2.0
    cap: float | None = None
    max_attempts: int | None = None

    @property
    def first_delay(self) -> float:
        return events_settings().retry_first if self.first is None else self.first

    @property
    def longest_delay(self) -> float:
        return events_settings().retry_cap if self.cap is None else self.cap

    @property
    def attempt_limit(self) -> int:
        """The most attempts a delivery gets (since it was created or last replayed)."""
        return events_settings().retry_max_attempts if self.max_attempts is None else self.max_attempts

    def nominal_delay(self, attempt: int) -> float:
        """Return the wait after failed attempt number `attempt` (1-based), before jitter."""
        exponent = min(max(attempt - 1, 0), 64)
        return min(self.longest_delay, self.first_delay * self.factor**exponent)

    def delay(self, *, attempt: int, retry_after: float | None = None) -> float:
        """Return the seconds to wait after failed attempt `attempt`: 75-100% of nominal, never under retry_after."""
        wait = self.nominal_delay(attempt) * random.uniform(0.75, 1.0)
        if retry_after is not None:
            wait = max(wait, min(float(retry_after), self.longest_delay))
        return wait

    def span(self) -> float:
        """Return the longest time from the first attempt to the last (every wait at its nominal length)."""
        return sum(self.nominal_delay(attempt) for attempt in range(1, self.attempt_limit))

    def describe(self) -> str:
        """Say the schedule in one line, for the admin, the checks and the docs."""
        return (
            f"{self.attempt_limit} attempts, waits from {self.first_delay:g} s doubling (×{self.factor:g}) up to "
            f"{self.longest_delay:g} s, over at most {self.span() / 3600:.1f} h"
        )
