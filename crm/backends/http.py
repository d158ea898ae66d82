"""The CRM over HTTP: PUT {CRM_API_URL}/contacts/{user_id}, as the CRM contract says."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests
import urllib3
from django.conf import settings

from crm.backends.base import BaseCRMBackend, Contact, CRMPermanentError, CRMTransientError, SyncResult

SYNCED_STATUSES = frozenset({200, 201, 204})
ALREADY_SYNCED_STATUS = 409
# Worth another try besides 5xx: the CRM timed out reading the request, or asks us to slow down.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})
RESPONSE_BODY_KEPT = 2000


# The HTTP session (kept-alive connections) a batch of syncs shares (see http_session).
_session: ContextVar[requests.Session | None] = ContextVar("crm_http_session", default=None)


@contextmanager
def http_session() -> Iterator[None]:
    """Send the block's requests over one kept-alive HTTP session."""
    with requests.Session() as session:
        token = _session.set(session)
        try:
            yield
        finally:
            _session.reset(token)


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds a Retry-After header asks for (delay-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class CRMBackend(BaseCRMBackend):
    """Speaks the CRM HTTP contract, with connect and read timeouts always set."""

    def __init__(self) -> None:
        if not settings.CRM_API_URL or not settings.CRM_API_KEY:
            raise CRMPermanentError("CRM_API_URL and CRM_API_KEY must both be set for the HTTP CRM backend")
        self.base_url = settings.CRM_API_URL.rstrip("/")
        self.api_key = settings.CRM_API_KEY
        # A total deadline besides the per-read one: a CRM that trickles its answer a byte at a
        # time never lets a read time out. urllib3 gives the connect and the wait for the answer
        # what is left of it; the body is read against it here. (Headers trickled a byte at a
        # time are bounded only by the read timeout per byte: not yet fixed.)
        self.deadline = settings.CRM_TOTAL_TIMEOUT
        self.timeout = urllib3.Timeout(
            connect=settings.CRM_CONNECT_TIMEOUT, read=settings.CRM_READ_TIMEOUT, total=self.deadline
        )

    @staticmethod
    def _read_body(response: requests.Response, *, until: float) -> str:
        """Read at most RESPONSE_BODY_KEPT bytes of the answer, and stop at the deadline however it trickles."""
        chunks: list[bytes] = []
        kept = 0
        try:
            while kept < RESPONSE_BODY_KEPT:
                if time.monotonic() > until:
                    raise requests.Timeout("the CRM's answer outlasted the deadline")
                # read1: what one receive brings (read would wait for all it asks for).
                chunk = response.raw.read1(min(512, RESPONSE_BODY_KEPT - kept), decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
                kept += len(chunk)
        finally:
            response.close()
        return b"".join(chunks).decode("utf-8", "replace")

    def upsert_contact(self, contact: Contact, *, idempotency_key: str) -> SyncResult:
        """PUT the contact; map the answer onto synced, transient or permanent."""
        started = time.monotonic()
        try:
            response = (_session.get() or requests).put(
                f"{self.base_url}/contacts/{contact.user_id}",
                json=contact.to_payload(),
                headers={
                    "Authorization": f"Bearer {self.api_key}",
                    "Idempotency-Key": idempotency_key,
                    "Content-Type": "application/json",
                },
                timeout=self.timeout,
                # A redirect would send the contact to another host (307) or turn the PUT into a GET (302).
                allow_redirects=False,
                # Read at most RESPONSE_BODY_KEPT bytes of the answer, however large it is.
                stream=True,
            )
            body = self._read_body(response, until=started + self.deadline)
        except requests.Timeout as error:
            raise CRMTransientError(f"CRM timed out: {type(error).__name__}") from error
        except requests.ConnectionError as error:
            raise CRMTransientError(f"CRM unreachable: {type(error).__name__}") from error
        except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
            # A broken or undecodable answer: the same request may well succeed next time.
            raise CRMTransientError(f"CRM answer unreadable: {type(error).__name__}") from error
        status = response.status_code
        if status in SYNCED_STATUSES:
            return SyncResult(status_code=status)
        if status == ALREADY_SYNCED_STATUS:
            return SyncResult(status_code=status, already_synced=True)
        if 300 <= status < 400:
            raise CRMPermanentError(f"CRM answered HTTP {status} (a redirect, not followed)", status=status, body=body)
        if status in RETRYABLE_CLIENT_STATUSES or status >= 500:
            raise CRMTransientError(
                f"CRM answered HTTP {status}",
                status=status,
                body=body,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        raise CRMPermanentError(f"CRM rejected the contact: HTTP {status}", status=status, body=body)
