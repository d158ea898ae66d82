"""Tasks of the audit app: load the event, call a service."""

from __future__ import annotations

from celery import shared_task

from audit.services import audit_entry_record_user_created
from events.consumers import ConsumerTask
from events.retry import RETRY_POLICY
from events.services import event_load
from users.events import UserCreated


@shared_task(base=ConsumerTask, consumer="audit.record_user_created", atomic=True, **RETRY_POLICY)
def record_user_created(event_id: str) -> None:
    """Record a UserCreated event in the audit log."""
    audit_entry_record_user_created(event=event_load(event_id=event_id, event_class=UserCreated))
