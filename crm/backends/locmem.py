"""An in-memory CRM backend for tests: contacts land in crm.backends.locmem.outbox."""

from __future__ import annotations

from dataclasses import dataclass

from crm.backends.base import BaseCRMBackend, Contact, SyncResult


@dataclass(frozen=True, slots=True)
class SentContact:
    """A contact the backend received, with the idempotency key it came with."""

    contact: Contact
    idempotency_key: str


outbox: list[SentContact] = []


class CRMBackend(BaseCRMBackend):
    """Appends each contact to the module's outbox."""

    def upsert_contact(self, contact: Contact, *, idempotency_key: str) -> SyncResult:
        """Keep the contact in memory."""
        outbox.append(SentContact(contact=contact, idempotency_key=idempotency_key))
        return SyncResult(status_code=200)
