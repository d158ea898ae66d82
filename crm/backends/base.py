"""What every CRM backend does, and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from events.api import PermanentError, RateLimited, TransientError


@dataclass(frozen=True, kw_only=True, slots=True)
class Contact:
    """The contact the CRM keeps for one user."""

    user_id: int
    email: str
    name: str
    signed_up_at: datetime

    def to_payload(self) -> dict[str, Any]:
        """Return the JSON body of the CRM contract."""
        return {"email": self.email, "name": self.name, "signed_up_at": self.signed_up_at.isoformat()}


@dataclass(frozen=True, kw_only=True, slots=True)
class SyncResult:
    """How the CRM answered a successful sync."""

    status_code: int | None
    already_synced: bool = False


class CRMError(Exception):
    """The CRM did not accept the contact (the message carries the status, never the body or the address)."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class CRMTransientError(CRMError, TransientError):
    """Worth retrying: 408, 429, 5xx, a connection error or a timeout; never sooner than retry_after."""

    def __init__(
        self, message: str, *, status: int | None = None, body: str = "", retry_after: float | None = None
    ) -> None:
        CRMError.__init__(self, message, status=status, body=body)
        self.retry_after = retry_after


class CRMRateLimited(CRMTransientError, RateLimited):
    """The CRM's quota refused the request (HTTP 429): the whole consumer slows until retry_after."""

    reason = "HTTP 429"


class CRMPermanentError(CRMError, PermanentError):
    """Not worth retrying: the CRM rejected the request (a 4xx other than 408, 409 and 429)."""


class BaseCRMBackend:
    """Upserts contacts; subclasses talk to a CRM, a log or memory."""

    def upsert_contact(self, contact: Contact, *, idempotency_key: str) -> SyncResult:
        """Create or update the contact; raise CRMTransientError or CRMPermanentError on failure."""
        raise NotImplementedError
