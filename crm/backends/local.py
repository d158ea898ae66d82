"""A CRM backend for runs without a CRM: it logs what it would sync."""

from __future__ import annotations

import logging

from crm.backends.base import BaseCRMBackend, Contact, SyncResult

logger = logging.getLogger(__name__)


class CRMBackend(BaseCRMBackend):
    """Logs the sync (by user id: never the address) and reports success."""

    def upsert_contact(self, contact: Contact, *, idempotency_key: str) -> SyncResult:
        """Log the contact that an HTTP backend would have sent."""
        logger.info(
            "CRM (local backend): contact of user %s synced, idempotency key %s", contact.user_id, idempotency_key
        )
        return SyncResult(status_code=None)
