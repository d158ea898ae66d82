"""Tasks of the crm app: load the event, call a service, retry what is transient."""

from __future__ import annotations

from celery import Task, shared_task

from crm.backends.base import CRMTransientError
from crm.services import contact_sync_give_up, crm_contact_sync
from events.consumers import ConsumerTask
from events.retry import RETRY_POLICY, retry_countdown
from events.services import event_load
from users.events import UserCreated


@shared_task(bind=True, base=ConsumerTask, consumer="crm.sync_contact", **RETRY_POLICY)
def sync_crm_contact(self: Task, event_id: str) -> None:
    """Sync the contact of a UserCreated event to the CRM."""
    event = event_load(event_id=event_id, event_class=UserCreated)
    try:
        crm_contact_sync(event=event)
    except CRMTransientError as error:
        if self.request.retries >= self.max_retries:
            contact_sync_give_up(event=event, error=error)
            raise
        raise self.retry(
            exc=error, countdown=retry_countdown(retries=self.request.retries, retry_after=error.retry_after)
        ) from error
