"""The side effect of the audit app: one entry per event."""

from __future__ import annotations

from audit.models import AuditEntry
from users.events import UserCreated


def audit_entry_record_user_created(*, event: UserCreated) -> AuditEntry:
    """Record the creation of a user in the audit log, once per event."""
    entry, _created = AuditEntry.objects.get_or_create(
        event_id=event.event_id,
        action=AuditEntry.Action.USER_CREATED,
        defaults={
            "actor_id": event.actor_id,
            "target_user_id": event.user_id,
            "source": event.source.value,
            "occurred_at": event.occurred_at,
        },
    )
    return entry
