"""Keep the one-time secrets that links carry in their path (confirmation, password reset) out of every log line."""

from __future__ import annotations

import logging
import re
from typing import Any

from gunicorn.glogging import Logger

# The paths of users/urls.py that carry a token: /confirm-email/<token>/ and
# /password-reset/<uidb64>/<token>/ (not Django's "set-password" step, which carries none).
# tests/config/test_redaction.py reverses the real URLs, so a changed pattern there fails it.
SECRET_IN_PATH = re.compile(
    r"(?P<prefix>/confirm-email/)(?!again/)[^/\s?#\"]+"
    r"|(?P<reset>/password-reset/[^/\s?#\"]+/)(?!set-password/)[^/\s?#\"]+"
)
REDACTED = "<token>"


def redact(text: str) -> str:
    """Return text with the token of every secret-carrying path replaced by <token>."""
    return SECRET_IN_PATH.sub(lambda match: (match["prefix"] or match["reset"]) + REDACTED, text)


class RedactTokensFilter(logging.Filter):
    """Rewrite a record whose message names a secret-carrying path (Django's "Bad Request: <path>")."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if (redacted := redact(message)) != message:
            record.msg, record.args = redacted, None
        return True


class AccessLogger(Logger):
    """Gunicorn's logger, its access lines (request line, path, referrer) written without the links' tokens."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        """Return gunicorn's access-log atoms, each text redacted."""
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: redact(value) if isinstance(value, str) else value for key, value in atoms.items()}
