"""The audit app's consumer: declared once, thin, calls the service."""

from __future__ import annotations

from audit.services import audit_entries_record_user_created
from events.api import consumer
from users.events import UserCreated
from users.signals import user_created


@consumer(user_created, atomic=True, many=True, batch_size=100)
def record_user_created(events: list[UserCreated]) -> None:
    """Record UserCreated events in the audit log."""
    audit_entries_record_user_created(events=events)
