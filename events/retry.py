"""Retry policy shared by the consumers' tasks: Celery's own backoff, with jitter, bounded."""

from __future__ import annotations

import smtplib
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval
from django.db import InterfaceError, OperationalError

# Errors worth another try: the database, the mail server or the network blinked.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    smtplib.SMTPException,
    ConnectionError,
    TimeoutError,
    SoftTimeLimitExceeded,
)

RETRY_BACKOFF_MAX = 600
MAX_RETRIES = 8

RETRY_POLICY: dict[str, Any] = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": True,
    "retry_backoff_max": RETRY_BACKOFF_MAX,
    "retry_jitter": True,
    "max_retries": MAX_RETRIES,
}


def retry_countdown(*, retries: int, retry_after: float | None = None) -> float:
    """Return seconds before the next try: exponential with full jitter, never sooner than retry_after."""
    backoff = get_exponential_backoff_interval(factor=1, retries=retries, maximum=RETRY_BACKOFF_MAX, full_jitter=True)
    if retry_after is None:
        return backoff
    # A server asking for more than our longest wait is capped: a countdown longer than
    # the broker's visibility timeout would be redelivered before it is due.
    return min(max(float(retry_after), backoff), RETRY_BACKOFF_MAX)
