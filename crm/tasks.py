"""The crm app's consumer: declared once, thin, calls the service."""

from __future__ import annotations

from crm.backends.http import http_session
from crm.services import crm_contact_sync
from events.api import consumer
from users.events import UserCreated
from users.signals import user_created


@consumer(user_created, batch_size=25, session=http_session)
def sync_contact(event: UserCreated) -> None:
    """Sync the contact of a UserCreated event to the CRM."""
    crm_contact_sync(event=event)
