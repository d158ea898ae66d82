"""What the admins are mailed about errors, and what an error report may show."""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import ClassVar

from django.utils.log import AdminEmailHandler
from django.views.debug import SafeExceptionReporterFilter

from config.redaction import redact


class RateLimitedAdminEmailHandler(AdminEmailHandler):
    """Mail the admins at most MAX_PER_WINDOW error reports a window, per process; log the rest.

    A client able to trigger an error at will must not be able to fill the admins' inboxes.
    """

    MAX_PER_WINDOW: ClassVar[int] = 10
    WINDOW_SECONDS: ClassVar[float] = 600.0

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._sent: list[float] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        now = time.monotonic()
        with self._lock:
            self._sent = [moment for moment in self._sent if now - moment < self.WINDOW_SECONDS]
            if len(self._sent) >= self.MAX_PER_WINDOW:
                return
            self._sent.append(now)
        super().emit(record)

    def send_mail(self, subject: str, message: str, *args: object, **kwargs: object) -> None:
        """Mail the report with the links' tokens redacted (the request's URL, path and META name them)."""
        html_message = kwargs.pop("html_message", None)
        super().send_mail(
            redact(subject),
            redact(message),
            *args,
            html_message=redact(html_message) if isinstance(html_message, str) else html_message,
            **kwargs,
        )


class SafeReporterFilter(SafeExceptionReporterFilter):
    """Also hide settings that hold URLs with credentials (DATABASE_URL, REDIS_URL, the broker, mail)."""

    hidden_settings = re.compile("API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|BROKER|DSN|MAILERS", flags=re.I)
